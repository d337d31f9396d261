"""The speed lane's supervised programs converged to the contracts: a program reads its contracts once, as it starts
(the sink and the archive check every record against them), so one whose contracts changed since is restarted.

Each program records at start what it read (:func:`record_contracts`); a program with no record was started by an
earlier release. The sink and the archive restart online (their consumer offsets are committed, so they resume
where they were: a compatible step). The Flink job's state belongs to its compiled plan (``emulation.flink.
CompiledPlan``): the verdict compares the plan the job runs with the plan as the code, SQL and options are now,
node by node. The same plan restores from a savepoint (a compatible restart); a changed one must recompute its
view, a replay."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline.provision.steps import Step
from pipeline.settings import Settings

RESTARTED = ("serve", "archive")  # programs that read contracts; the watchdog reads none


def contracts_read(program: str, settings: Settings) -> dict[str, str]:
    """What ``program`` reads as the contracts are now: each contract's id -> "version sha" (the file's)."""
    from pipeline.contracts import load_registry, stream_names

    registry, names = load_registry(), stream_names()
    if program == "flink":
        from emulation.flink import inputs_key
        from pipeline.platform import get_service

        return {"inputs": inputs_key(settings.flink), "view": get_service("flink", settings).compiled_plan().key,
                "options": _options(settings)}
    if program == "archive":
        raw = registry.topic("raw")
        rows = {c.row_of for c in raw.columns} - {None}
        read = [raw, registry.archive_of(names.raw), *(registry.dataset(t) for t in sorted(rows))]
    elif program == "serve":
        read = [registry.dataset(t) for t in names.served]
    else:
        return {}
    return {ds.contract_id: f"{ds.version} {hashlib.sha256(ds.path.read_bytes()).hexdigest()[:8]}" for ds in read}


def _record(settings: Settings, program: str) -> Path:
    return settings.state_dir / "supervisor" / f"{program}.contracts.json"


def record_contracts(settings: Settings, program: str) -> None:
    """Called by a program as it starts: what it read."""
    path = _record(settings, program)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(contracts_read(program, settings), indent=1))


def recorded(settings: Settings, program: str) -> dict[str, str] | None:
    path = _record(settings, program)
    return json.loads(path.read_text()) if path.exists() else None


def _changes(have: dict[str, str] | None, want: dict[str, str]) -> str:
    if have is None:
        return "started by an earlier release"
    changed = [f"{cid} {have.get(cid, '(none)').split()[0]} -> {v.split()[0]}" for cid, v in want.items()
               if have.get(cid) != v]
    return "contracts changed: " + ", ".join(changed)


def restart_supervisor(settings: Settings) -> list[str]:
    """Restart supervisord on this release's config, and with it the programs that ran (each stopped as `stop` stops
    it: the Flink job with a savepoint, which it resumes from; each registered anew by its service); their names."""
    from emulation.supervisor import SupervisorService
    from pipeline.platform import get_service

    supervisor = SupervisorService(settings)
    running = supervisor.running()
    supervisor.stop()
    for program in running:
        get_service(program, settings).start()
    return running


def _options(settings: Settings) -> str:
    """The job's options as recorded: its command-line tuning from the settings."""
    from emulation.flink import job_arguments

    return " ".join(job_arguments(settings.flink))


def _options_changed(have: str, want: str) -> str:
    pairs = lambda text: dict(zip(text.split()[::2], text.split()[1::2], strict=False))  # noqa: E731
    old, new = pairs(have), pairs(want)
    return ", ".join(f"{k} {old.get(k)} -> {v}" for k, v in new.items() if old.get(k) != v) or "none of its options"


def flink_step(settings: Settings) -> Step | None:
    """The Flink job's step when what its plan is compiled from changed since it started: a restart restoring its
    savepoint when the compiled plan is the same, else a replay (the nodes that changed, what it reads and costs)."""
    from emulation.flink import CompiledPlan, inputs_key
    from pipeline.platform import get_service
    from pipeline.speed.replay import replay_reads

    have = recorded(settings, "flink") or {}
    if have.get("inputs") == inputs_key(settings.flink):
        return None
    flink = get_service("flink", settings)
    wanted = flink.compiled_plan()
    restart = lambda: (flink.stop(), flink.start())  # noqa: E731
    if have.get("view") == wanted.key:
        return Step("programs", "flink", "restart from a savepoint (its compiled plan is unchanged)",
                    detail=f"options changed: {_options_changed(have.get('options', ''), _options(settings))}; "
                           f"the plan's {len(wanted.nodes)} nodes are the same, so its state (stateful: "
                           f"{'; '.join(wanted.stateful())}) is restored from the savepoint it stops with",
                    run=restart)
    running = flink.state_dir / "jobs" / str(have.get("view")) / "plan.json"
    if running.exists():
        changes = CompiledPlan(running, wanted.topics).changes(wanted)
        why = f"its compiled plan changed ({'; '.join(changes[:6])}{' ...' if len(changes) > 6 else ''})"
    else:
        why = "the running job's compiled plan is unknown (started by an earlier release)"
    return Step("programs", "flink", "recompute the view with the new plan", verdict="replay",
                detail=f"{why}: no savepoint restores into it, so the job starts the new plan from no state; "
                       f"{replay_reads(settings).describe_topic_replay()}; the sink upserts what it recomputes",
                run=restart)


def plan(settings: Settings) -> list[Step]:
    from emulation.supervisor import SupervisorService
    from pipeline.platform import get_service

    supervisor = SupervisorService(settings)
    running = set(supervisor.running())
    flink = flink_step(settings) if "flink" in running else None
    if running and not supervisor.current:
        how = f"restart on this release, and its programs ({', '.join(sorted(running))})"
        why = "its programs ran another release's code (another folder, an earlier version); each resumes where it was"
        replay = flink is not None and flink.verdict == "replay"
        return [Step("programs", "supervisor", how, verdict="replay" if replay else "compatible",
                     detail=why + (f"; the Flink job: {flink.detail}" if flink else ""),
                     run=lambda: restart_supervisor(settings))]
    steps = []
    for program in (p for p in RESTARTED if p in running):
        want, have = contracts_read(program, settings), recorded(settings, program)
        if have == want:
            continue
        service = get_service(program, settings)
        steps.append(Step("programs", program, f"restart ({_changes(have, want)})",
                          detail="its consumer offsets are committed: it resumes where it was",
                          run=lambda s=service: (s.stop(), s.start())))
    return [*steps, *([flink] if flink else [])]
