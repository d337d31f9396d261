"""The provisioning layer: the one place that creates or alters anything in an engine.

Each engine's module reads what is deployed and compares it with what the contracts and the settings say, and returns
the ordered steps that close the gap, each with its verdict (compatible, needs a backfill or a replay, breaking).
``plan`` gathers them; ``apply`` runs the compatible ones (nothing at all when any step is breaking); ``ensure`` is what
every other command calls first: it makes what is missing altogether (a fresh platform) and, when a column the command
would read or write is behind its contract, says in one line which step is pending instead of failing later with a
traceback (other pending changes, a CHECK or a topic config, wait for `olist apply` without stopping the command).

Every step is idempotent and planned afresh from what is deployed, so a run killed between two steps is finished by
the next one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from emulation import resources
from emulation.service import ServiceError
from pipeline.contracts import Registry
from pipeline.progress import SILENT, Progress
from pipeline.provision.steps import ENGINES, Applied, ApplyReport, PendingChange, Plan, Step, Verdict, converge
from pipeline.settings import Settings

__all__ = ["ENGINES", "Applied", "ApplyReport", "PendingChange", "Plan", "Step", "Verdict", "apply", "ensure", "plan"]


def _planners(settings: Settings, registry: Registry | None
              ) -> dict[str, tuple[Callable[[], bool], Callable[[], list[Step]]]]:
    """Per engine: is it reachable, and its planner."""
    from emulation.supervisor import SupervisorService
    from pipeline.provision import cassandra, connect, kafka, postgres, programs

    pg, worker = resources.engine("postgres", settings), resources.engine("connect", settings)
    return {
        "postgres": (pg.available,
                     lambda: postgres.plan(postgres.connector(pg.conninfo()), settings.pg_schema, registry)),
        "kafka": (resources.engine("kafka", settings).available, lambda: kafka.plan(settings, registry)),
        "connect": (lambda: worker.available() and pg.available(), lambda: connect.plan(settings)),
        "cassandra": (resources.engine("cassandra", settings).available, lambda: cassandra.plan(settings, registry)),
        "programs": (lambda: SupervisorService(settings).pid() is not None, lambda: programs.plan(settings)),
    }


def plan(settings: Settings, engines: Iterable[str] | None = None, registry: Registry | None = None) -> Plan:
    """Every step, engine by engine in ``ENGINES`` order, to the contracts in ``registry`` (``contracts/`` by
    default); an engine that is not running is skipped, saying so."""
    chosen = list(engines or ENGINES)
    unknown = [e for e in chosen if e not in ENGINES]
    if unknown:
        raise ServiceError(f"unknown engine {unknown[0]!r}; known: {', '.join(ENGINES)}")
    result = Plan()
    planners = _planners(settings, registry)
    for engine in ENGINES:
        if engine not in chosen:
            continue
        available, planner = planners[engine]
        if not available():
            if engine == "programs":
                continue  # none runs: each reads the contracts as they are when it starts
            result.skipped[engine] = f"not running (`olist up {engine}`): planned once it runs"
            continue
        result.steps += planner()
    return result


def apply(settings: Settings, engines: Iterable[str] | None = None, progress: Progress = SILENT,
          registry: Registry | None = None, recompute: bool = False) -> ApplyReport:
    """Plan, then run every compatible step in order; refuse everything when a step is breaking. The steps that need
    a backfill or a replay are named and left, unless ``recompute`` (`olist apply --recompute`) runs them too."""
    started = time.perf_counter()
    report = ApplyReport(plan(settings, engines, registry))
    if report.plan.breaking:
        report.refused = report.plan.breaking
        report.seconds = time.perf_counter() - started
        return report
    todo = [s for s in report.plan.steps if s.verdict == "compatible" or recompute]
    report.left = [s for s in report.plan.recompute if s not in todo]
    for i, step in enumerate(todo):
        progress.update("apply", description=f"apply: {step}", total=len(todo), completed=i)
        t0 = time.perf_counter()
        assert step.run is not None
        step.run()
        report.applied.append(Applied(step, time.perf_counter() - t0))
    progress.update("apply", description="applied", total=max(len(todo), 1), completed=max(len(todo), 1))
    report.seconds = time.perf_counter() - started
    return report


def ensure(settings: Settings, *engines: str, registry: Registry | None = None) -> list[Step]:
    """What a command calls before it uses ``engines``: make every missing object (a fresh platform: tables,
    topics, grants) and return those steps; raise :class:`PendingChange` (one line, naming the step and `olist
    apply`) when a column the command reads or writes is behind its contract."""
    return converge(lambda: plan(settings, engines, registry).steps)
