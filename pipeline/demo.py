"""The demo of the whole platform on the embedded defaults, as one library call returning a typed report:
services up, the sample generated and the batch lane built, then the speed lane streaming for a while into the
raw archive and Cassandra, the latest windows read back, and the dashboards left up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emulation.service import ServiceError
from pipeline.batch.generator import GenerateResult
from pipeline.batch.lane import BatchReport, generate, run_batch
from pipeline.platform import Started, up
from pipeline.progress import SILENT, Progress
from pipeline.settings import Settings
from pipeline.speed.lane import StreamReport, run_stream

STREAMING = ["kafka", "connect", "cassandra", "flink"]


@dataclass
class DemoReport:
    settings: Settings
    services: list[Started] = field(default_factory=list)
    generated: GenerateResult | None = None
    batch: BatchReport | None = None
    stream: StreamReport | None = None
    windows: list[dict[str, Any]] = field(default_factory=list)  # the aggregated windows of the last minutes
    windows_minutes: float = 5
    dashboard_url: str | None = None

    @property
    def problems(self) -> list[str]:
        """Why the demo failed (empty when it did not)."""
        out = []
        if self.batch is None or not self.batch.success:
            out.append("the batch lane did not finish cleanly")
        if self.stream is not None and not self.stream.complete:
            out.append(f"{self.stream.delivered:,} of {self.stream.simulation.changes:,} committed changes reached "
                       f"{self.stream.raw_topic}")
        return out

    @property
    def quarantined(self) -> int:
        return self.batch.load.quarantined if self.batch else 0


def run_demo(settings: Settings, progress: Progress = SILENT) -> DemoReport:
    """Run the demo; stops after the batch lane when that fails (the report says why)."""
    from emulation.dashboard import DashboardService
    from pipeline.serving.live import live_windows

    report = DemoReport(settings)
    report.services += up(settings, progress=progress)
    report.generated = generate(settings, progress=progress)
    report.batch = run_batch(settings, progress=progress)
    if not report.batch.success:
        return report
    report.services += up(settings, STREAMING, progress)

    def simulated(done: int, _elapsed: float) -> None:
        progress.update("simulate", description=f"simulating {settings.stream_rate:g} changes/s", completed=done,
                        total=int(settings.stream_rate * settings.stream_seconds))

    report.stream = run_stream(settings, settings.stream_rate, settings.stream_seconds, settings.stream_seed,
                               progress=simulated)
    progress.update("simulate", completed=report.stream.simulation.changes, total=report.stream.simulation.changes)
    live = live_windows(settings, report.windows_minutes)
    if live.error:
        raise ServiceError(f"the live view could not be read: {live.error}")
    report.windows = live.aggregated
    report.services += up(settings, ["dashboard"], progress)
    report.dashboard_url = DashboardService(settings).url
    return report
