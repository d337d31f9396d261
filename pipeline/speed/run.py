"""The speed lane's long-running pieces as supervisord programs (``emulation/supervisor.py``):
``python -m pipeline.speed.run {flink,serve,archive,watchdog} --settings FILE``.

supervisord restarts a program that dies; inside, a piece that fails (Kafka or Cassandra briefly gone) is retried
with exponential backoff (tenacity) until it is told to stop (SIGTERM). ``flink`` becomes the Flink job itself
(``exec``), resuming from the newest savepoint or retained checkpoint; ``watchdog`` restarts a FAILED Connect task.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from tenacity import Retrying, retry_if_exception_type, wait_exponential

from pipeline.settings import Settings

log = logging.getLogger("olist.speed")


def forever(step: Callable[[threading.Event], object], stop: threading.Event, name: str) -> None:
    """Run ``step`` until ``stop``; after a failure wait 1, 2, 4 ... up to 30 s and run it again."""
    for attempt in Retrying(wait=wait_exponential(multiplier=1, max=30), retry=retry_if_exception_type(Exception),
                            reraise=True, before_sleep=lambda state: log.warning(
                                "%s failed (%s); retrying in %.0f s", name, state.outcome.exception(),
                                state.next_action.sleep if state.next_action else 0)):
        with attempt:
            if stop.is_set():
                return
            step(stop)
            if not stop.is_set():
                raise RuntimeError(f"{name} returned before it was told to stop")


def serve(settings: Settings, stop: threading.Event) -> None:
    from pipeline.speed.sink import run_sink

    run_sink(settings, stop=stop, instance_id="olist-sink-service")


def archive(settings: Settings, stop: threading.Event) -> None:
    from emulation.kafka import KafkaService
    from pipeline import provision
    from pipeline.contracts import stream_names
    from pipeline.speed.archive import RawArchiver, archive_lock
    from pipeline.storage import s3_location

    names = stream_names()
    provision.ensure(settings, "kafka")  # the raw topic, its dead-letter topic and the archive's grants
    with archive_lock(settings.state_dir):
        RawArchiver(KafkaService(settings).client_config("archive"), s3_location(settings), names.raw,
                    settings.raw_prefix, flush_seconds=5, dead_letter=names.dead_letter(names.raw)).run(stop=stop)


def watchdog(settings: Settings, stop: threading.Event, interval: float = 5.0) -> None:
    """Restart the CDC connector's FAILED tasks (Connect leaves them failed), counting each restart."""
    from emulation.connect import ConnectService
    from pipeline.speed.cdc import CONNECTOR

    connect = ConnectService(settings)
    restarts = settings.state_dir / "supervisor" / "watchdog.task-restarts"
    while not stop.wait(interval):
        if not connect.available():
            continue
        status = connect.connector_status(CONNECTOR)
        if status is None:
            continue
        failed = [t for t in status.get("tasks", []) if t.get("state") == "FAILED"]
        if failed or status["connector"].get("state") == "FAILED":
            log.warning("connector %s has failed tasks %s: restarting them", CONNECTOR, [t["id"] for t in failed])
            connect.restart_failed(CONNECTOR)
            count = int(restarts.read_text() or 0) if restarts.exists() else 0
            restarts.write_text(str(count + 1))


def flink(settings: Settings) -> None:
    """Become the Flink job, resuming from the newest savepoint or retained checkpoint (say which)."""
    from pipeline.speed.services import FlinkService

    service = FlinkService(settings)
    cmd, resumed = service.job_command()
    print(f"flink: {resumed}", flush=True)
    os.execve(cmd[0], cmd, {**os.environ, **service.job_environment()})


def main(argv: list[str] | None = None) -> int:
    from emulation.supervisor import SupervisorService
    from pipeline.provision.programs import record_contracts

    parser = argparse.ArgumentParser(prog="python -m pipeline.speed.run", description=__doc__)
    parser.add_argument("program", choices=("flink", "serve", "archive", "watchdog"))
    parser.add_argument("--settings", type=Path, required=True, help="the settings file the supervisor wrote")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    settings = Settings.model_validate_json(args.settings.read_text())
    SupervisorService(settings).record_start(args.program)
    record_contracts(settings, args.program)  # what it reads now: `olist plan` restarts it when they change
    if args.program == "flink":
        flink(settings)
        return 1  # not reached: exec replaced this process
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    piece = {"serve": serve, "archive": archive, "watchdog": watchdog}[args.program]
    forever(lambda s: piece(settings, s), stop, args.program)
    return 0


if __name__ == "__main__":
    sys.exit(main())
