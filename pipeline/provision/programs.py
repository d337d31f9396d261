"""The speed lane's supervised programs converged to the contracts: a program reads its contracts once, as it starts
(the sink and the archive check every record against them), so one whose contracts changed since is restarted.

Each program records at start what it read (:func:`record_contracts`); a program with no record was started by an
earlier release. The sink and the archive restart online (their consumer offsets are committed, so they resume
where they were: a compatible step). The Flink job's state belongs to its plan (``emulation.flink.plan_key``): a
changed plan starts from no state and recomputes its windows from the raw topic, a replay."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline.provision.steps import Step
from pipeline.settings import Settings

REPLAY = ("its state cannot be restored, so the running job stops, its old state is dropped and the new plan "
          "recomputes every window from the raw topic's earliest retained offset; the sink upserts what it recomputes")
RESTARTED = ("serve", "archive")  # programs that read contracts; the watchdog reads none


def contracts_read(program: str, settings: Settings) -> dict[str, str]:
    """What ``program`` reads as the contracts are now: each contract's id -> "version sha" (the file's)."""
    from pipeline.contracts import load_registry, stream_names

    registry, names = load_registry(), stream_names()
    if program == "flink":
        from emulation.flink import plan_key

        return {"plan": plan_key(settings.flink)}
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


def plan(settings: Settings) -> list[Step]:
    from emulation.supervisor import SupervisorService
    from pipeline.platform import get_service

    supervisor = SupervisorService(settings)
    running = set(supervisor.running())
    flink = get_service("flink", settings)
    # the running job checkpoints under its own plan's folder: none for the plan as it is now means the plan changed
    replay = "flink" in running and not flink.job_dir.exists()
    if running and not supervisor.current:
        how = f"restart on this release, and its programs ({', '.join(sorted(running))})"
        why = "its programs ran another release's code (another folder, an earlier version); each resumes where it was"
        return [Step("programs", "supervisor", how, verdict="replay" if replay else "compatible",
                     detail=why + (", but the Flink job's plan changed: " + REPLAY if replay else ""),
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
    if replay:
        steps.append(Step("programs", "flink", "start the job's new plan from no state", verdict="replay",
                          detail=f"its plan (generated SQL, code or plan options) changed: {REPLAY}",
                          run=lambda: (flink.stop(), flink.start())))
    return steps
