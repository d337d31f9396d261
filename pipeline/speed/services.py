"""The speed lane's own long-running pieces as services (``olist up flink serve archive watchdog``), each a program
of the supervisor (``emulation/supervisor.py``) that runs ``python -m pipeline.speed.run NAME``, which calls the
service's ``run``: restarted after a failure, shown with its restarts by ``olist status``, stopped by ``olist down``.
Adding a piece is a class here and its line in ``pipeline.platform.PROGRAMS``.

Inside, a piece that fails (Kafka or Cassandra briefly gone) is retried with exponential backoff until it is told to
stop (SIGTERM); ``flink`` becomes the Flink job itself (``exec``), resuming from the newest savepoint or retained
checkpoint; ``watchdog`` restarts a FAILED Connect task.
"""

from __future__ import annotations

import logging
import os
import threading

from emulation.flink import FlinkJobService
from emulation.resources import engine
from emulation.service import Endpoint
from emulation.supervisor import SupervisedService
from pipeline.contracts import stream_names
from pipeline.settings import Settings

RUNNER = "pipeline.speed.run"
log = logging.getLogger("olist.speed")


class FlinkService(FlinkJobService):
    """The Flink job (emulation/flink.py runs it) on the contracts' topics: it reads the raw topic, and every topic of
    the lane (its sinks, compacted ones above all) and its principal's grants are made before it starts."""

    runner = RUNNER

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, source_topic=stream_names().raw)

    def prepare(self) -> None:
        from pipeline import provision

        provision.ensure(self.settings, "kafka")

    def run(self, stop: threading.Event) -> None:
        """Become the Flink job, resuming from the newest savepoint or retained checkpoint (say which)."""
        cmd, resumed = self.job_command()
        print(f"flink: {resumed}", flush=True)
        os.execve(cmd[0], cmd, {**os.environ, **self.job_environment()})


class _Piece(SupervisedService):
    """Healthy while supervisord reports it RUNNING (past its start-up seconds); ``run`` is its body."""

    runner = RUNNER

    def endpoint(self) -> Endpoint | None:
        return Endpoint(f"supervisor/{self.program}", 0, {}) if self.supervisor.endpoint() else None

    def health(self) -> bool:
        info = self.supervisor.program(self.program)
        return info is not None and info.state == "RUNNING"

    def run(self, stop: threading.Event) -> None:
        raise NotImplementedError


class SinkService(_Piece):
    """The Cassandra sink of the windowed topics (what `olist serve` runs in the foreground)."""

    name = program = "serve"

    def run(self, stop: threading.Event) -> None:
        from pipeline.speed.sink import run_sink

        run_sink(self.settings, stop=stop, instance_id="olist-sink-service")


class ArchiveService(_Piece):
    """The raw archive of the CDC topic on S3 (what `olist cdc archive` runs in the foreground)."""

    name = program = "archive"

    def run(self, stop: threading.Event) -> None:
        from pipeline import provision
        from pipeline.speed.archive import RawArchiver, archive_lock
        from pipeline.storage import s3_location

        names = stream_names()
        provision.ensure(self.settings, "kafka")  # the raw topic, its dead-letter topic and the archive's grants
        with archive_lock(self.settings.state_dir):
            RawArchiver(engine("kafka", self.settings).client_config("archive"), s3_location(self.settings),
                        names.raw, self.settings.raw_prefix, flush_seconds=5,
                        dead_letter=names.dead_letter(names.raw)).run(stop=stop)


class WatchdogService(_Piece):
    """Restarts the CDC connector's FAILED tasks, with the restarts counted."""

    name = program = "watchdog"
    interval = 5.0

    def run(self, stop: threading.Event) -> None:
        from pipeline.speed.cdc import CONNECTOR

        connect = engine("connect", self.settings)
        restarts = self.settings.state_dir / "supervisor" / "watchdog.task-restarts"
        while not stop.wait(self.interval):
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
