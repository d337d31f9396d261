"""The speed lane run as one piece (the demo's): Debezium registered, the Flink job windowing the raw topic, the
sink writing its windows to Cassandra, the simulator committing changes, a tap counting them on the raw topic with
their lag, and the raw archive writing them to S3."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from emulation.kafka import KafkaService
from emulation.postgres import PostgresService
from pipeline.contracts import stream_names
from pipeline.settings import Settings
from pipeline.speed import cdc
from pipeline.speed.archive import ArchiveReport, RawArchiver, archive_lock
from pipeline.speed.simulate import SimulationReport, simulate
from pipeline.speed.sink import SinkReport, run_sink
from pipeline.speed.topics import TopicTap, end_offsets, tap
from pipeline.storage import s3_location


@dataclass
class StreamReport:
    simulation: SimulationReport
    topic: TopicTap
    archive: ArchiveReport
    archive_uri: str
    raw_topic: str
    served: SinkReport | None = None  # windows the sink wrote to Cassandra (None: serving not run)

    @property
    def complete(self) -> bool:
        """Every committed change reached the topic."""
        return self.topic.events == self.simulation.changes


def run_stream(settings: Settings, rate: float, seconds: float, seed: int,
               progress: Callable[[int, float], None] | None = None, drain_timeout: float = 60,
               serving: bool = True) -> StreamReport:
    """Register the connector (idempotent) and, with ``serving``, start the Flink job (Cassandra must run);
    then simulate for ``seconds`` while the tap, the archive and the sink read their topics; return once every
    change is on the topic, the archive has flushed and the sink has written what Flink committed."""
    names = stream_names()
    kafka = KafkaService(settings)
    cdc.start(settings)
    sink_reports: list[SinkReport] = []
    stop_sink = threading.Event()
    sink_thread = threading.Thread(target=lambda: sink_reports.append(run_sink(settings, until_idle=5,
                                                                                stop=stop_sink)),
                                   name="olist-serving", daemon=True)
    if serving:
        from emulation.flink import FlinkJobService

        FlinkJobService(settings).start()
        sink_thread.start()
    client = kafka.client_config()
    start = end_offsets(client, names.raw)
    tally, done = TopicTap(), threading.Event()
    report: list[SimulationReport] = []
    tap_thread = threading.Thread(target=tap, args=(client, names.raw, start, tally, done,
                                                    lambda: report[0].changes if report else None, drain_timeout),
                                  name="olist-tap", daemon=True)
    loc = s3_location(settings)
    archiver = RawArchiver(client, loc, names.raw, settings.raw_prefix, flush_seconds=5,
                           dead_letter=names.dead_letter(names.raw))
    archive_report: list[ArchiveReport] = []
    stop_archive = threading.Event()

    def archive() -> None:
        with archive_lock(settings.state_dir):
            archive_report.append(archiver.run(until_idle=2.0, stop=stop_archive))

    archive_thread = threading.Thread(target=archive, name="olist-archive", daemon=True)
    tap_thread.start()
    archive_thread.start()
    try:
        report.append(simulate(PostgresService(settings).conninfo(), settings.pg_schema, rate, seconds, seed,
                               progress=progress))
    finally:
        done.set()
        tap_thread.join(drain_timeout + 5)
        stop_archive.set()
        archive_thread.join(drain_timeout + 5)
        stop_sink.set()  # it returns once no window arrived for 5 s (Flink commits them on checkpoints)
        if serving:
            sink_thread.join(drain_timeout + 5)
    archived = archive_report[0] if archive_report else ArchiveReport()
    return StreamReport(report[0], tally, archived, loc.uri(f"{settings.raw_prefix}/{names.raw}/"), names.raw,
                        served=sink_reports[0] if sink_reports else None)


def simulate_trading(settings: Settings, rate: float, duration: float, seed: int,
                     progress: Callable[[int, float], None] | None = None) -> SimulationReport:
    """``olist simulate``: live trading in the configured PostgreSQL."""
    from pipeline.batch.lane import running_postgres

    return simulate(running_postgres(settings).conninfo(), settings.pg_schema, rate, duration, seed,
                    progress=progress)


def archive_raw(settings: Settings, duration: float | None = None, idle: float | None = 10,
                flush_records: int = 10_000) -> tuple[ArchiveReport, str]:
    """``olist cdc archive``: the raw topic to S3 Parquet until ``duration`` or ``idle`` seconds of quiet;
    returns the report and the archive's URI."""
    from emulation.service import ServiceError

    kafka = KafkaService(settings)
    if kafka.pid() is None:
        raise ServiceError("kafka is not running: start it with `olist cdc up`")
    names = stream_names()
    loc = s3_location(settings)
    with archive_lock(settings.state_dir):
        archiver = RawArchiver(kafka.client_config(), loc, names.raw, settings.raw_prefix,
                               flush_records=flush_records, dead_letter=names.dead_letter(names.raw))
        return archiver.run(duration, idle), loc.uri(f"{settings.raw_prefix}/{names.raw}/")
