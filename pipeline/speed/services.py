"""The speed lane's own long-running pieces as services (``olist up serve archive watchdog``), each a program of
the supervisor (``emulation/supervisor.py``): restarted after a failure, shown with its restarts by
``olist status``, stopped by ``olist down``."""

from __future__ import annotations

from emulation.service import Endpoint
from emulation.supervisor import SupervisedService


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
