"""The speed lane's own long-running pieces as services (``olist up flink serve archive watchdog``), each a program
of the supervisor (``emulation/supervisor.py``): restarted after a failure, shown with its restarts by
``olist status``, stopped by ``olist down``. ``pipeline.platform.PROGRAMS`` registers them beside emulation's
engines."""

from __future__ import annotations

from emulation.flink import FlinkJobService
from emulation.service import Endpoint
from emulation.supervisor import SupervisedService
from pipeline.contracts import stream_names
from pipeline.settings import Settings


class FlinkService(FlinkJobService):
    """The Flink job (emulation/flink.py runs it) on the contracts' topics: it reads the raw topic, and every topic of
    the lane (its sinks, compacted ones above all) and its principal's grants are made before it starts."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, source_topic=stream_names().raw)

    def prepare(self) -> None:
        from pipeline import provision

        provision.ensure(self.settings, "kafka")


class _Piece(SupervisedService):
    """Healthy while supervisord reports it RUNNING (past its start-up seconds)."""

    def endpoint(self) -> Endpoint | None:
        return Endpoint(f"supervisor/{self.program}", 0, {}) if self.supervisor.endpoint() else None

    def health(self) -> bool:
        info = self.supervisor.program(self.program)
        return info is not None and info.state == "RUNNING"


class SinkService(_Piece):
    """The Cassandra sink of the windowed topics (what `olist serve` runs in the foreground)."""

    name = program = "serve"


class ArchiveService(_Piece):
    """The raw archive of the CDC topic on S3 (what `olist cdc archive` runs in the foreground)."""

    name = program = "archive"


class WatchdogService(_Piece):
    """Restarts the CDC connector's FAILED tasks, with the restarts counted."""

    name = program = "watchdog"
