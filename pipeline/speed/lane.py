"""The speed lane run as one piece (the demo's): Debezium registered, the Flink job windowing the raw topic, the
sink writing its windows to Cassandra, the simulator committing changes, a tap counting them on the raw topic with
their lag, and the raw archive writing them to S3."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from emulation.resources import engine
from pipeline.contracts import stream_names
from pipeline.settings import Settings
from pipeline.speed import cdc
from pipeline.speed.archive import ArchiveReport, RawArchiver, archive_lock
from pipeline.speed.simulate import SimulationReport, simulate
from pipeline.speed.sink import SinkReport
from pipeline.speed.topics import TopicTap, end_offsets, tap
from pipeline.storage import s3_location


@dataclass
class StreamReport:
    simulation: SimulationReport
    topic: TopicTap
    archive: ArchiveReport  # what the archive service holds once caught up
    archive_uri: str
    raw_topic: str
    served: SinkReport | None = None  # the windows in Cassandra once the sink caught up (None: serving not run)

    @property
    def delivered(self) -> int:
        """The simulator's committed changes seen on the topic (by their transactions)."""
        return self.topic.events_of(self.simulation.transactions)

    @property
    def complete(self) -> bool:
        """Every change the simulator committed reached the topic, once."""
        return self.delivered == self.simulation.changes


def settled(settings: Settings, timeout: float = 120, serving: bool = True) -> tuple[ArchiveReport, SinkReport | None]:
    """Wait until the archive holds the raw topic to its end and (with ``serving``) Flink has passed it and the sink
    has written everything Flink committed; what the archive and Cassandra then hold."""
    from pipeline.lake import ArchiveLayout
    from pipeline.serving.windows import read_windows
    from pipeline.speed.sink import GROUP
    from pipeline.speed.topics import committed_offsets, pending, wait_until

    names = stream_names()
    client = engine("kafka", settings).client_config()
    ends = end_offsets(client, names.raw)
    layout = ArchiveLayout(s3_location(settings), settings.raw_prefix, names.raw)
    wait_until(lambda: all(layout.progress().get(p, 0) >= o for p, o in ends.items()), timeout, 1.0)
    manifests = layout.manifests()
    dead = sum(end_offsets(client, names.dead_letter(names.raw)).values())
    archived = ArchiveReport(sum(m.records for m in manifests), [m.key for m in manifests], dead)
    if not serving:
        return archived, None
    flink = f"{settings.flink.group_id}-events"
    wait_until(lambda: all(committed_offsets(client, flink, names.raw).get(p, 0) >= o for p, o in ends.items()),
               timeout, 1.0)
    wait_until(lambda: pending(client, GROUP, names.served) == 0, timeout, 1.0)
    with engine("cassandra", settings).session(names.keyspace, role="reader") as session:
        rows = sum(len(read_windows(session, topic, 24 * 60)) for topic in names.windowed)
    dead_served = sum(sum(end_offsets(client, names.dead_letter(t)).values()) for t in names.served)
    return archived, SinkReport(written=rows, dead_lettered=dead_served)


def run_stream(settings: Settings, rate: float, seconds: float, seed: int,
               progress: Callable[[int, float], None] | None = None, drain_timeout: float = 120,
               serving: bool = True) -> StreamReport:
    """Register the connector (idempotent) and start the lane's supervised pieces (the archive and the CDC
    watchdog; with ``serving`` the Flink job and the sink too: Cassandra must run); then simulate for ``seconds``
    while a tap counts the changes on the raw topic; return once every change is on the topic and the archive and
    the sink have caught up. The pieces keep running (`olist down` stops them)."""
    from pipeline.platform import up

    names = stream_names()
    cdc.start(settings)
    up(settings, ["archive", "watchdog", *(["flink", "serve"] if serving else [])])
    client = engine("kafka", settings).client_config()
    start = end_offsets(client, names.raw)
    tally, done = TopicTap(), threading.Event()
    report: list[SimulationReport] = []

    def complete(seen: TopicTap) -> bool:
        return bool(report) and seen.events_of(report[0].transactions) >= report[0].changes

    tap_thread = threading.Thread(target=tap, args=(client, names.raw, start, tally, done, complete, drain_timeout),
                                  name="olist-tap", daemon=True)
    tap_thread.start()
    try:
        report.append(simulate(engine("postgres", settings).conninfo(), settings.pg_schema, rate, seconds, seed,
                               progress=progress))
    finally:
        done.set()
        tap_thread.join(drain_timeout + 5)
    archived, served = settled(settings, drain_timeout, serving)
    return StreamReport(report[0], tally, archived, s3_location(settings).uri(f"{settings.raw_prefix}/{names.raw}/"),
                        names.raw, served=served)


def simulate_trading(settings: Settings, rate: float, duration: float, seed: int,
                     progress: Callable[[int, float], None] | None = None) -> SimulationReport:
    """``olist simulate``: live trading in the configured PostgreSQL."""
    from pipeline.resources import running_postgres

    return simulate(running_postgres(settings).conninfo(), settings.pg_schema, rate, duration, seed,
                    progress=progress)


def archive_raw(settings: Settings, duration: float | None = None, idle: float | None = 10,
                flush_records: int = 10_000) -> tuple[ArchiveReport, str]:
    """``olist cdc archive``: the raw topic to S3 Parquet until ``duration`` or ``idle`` seconds of quiet;
    returns the report and the archive's URI."""
    from emulation.service import ServiceError

    kafka = engine("kafka", settings)
    if not kafka.available():
        raise ServiceError("kafka is not running: start it with `olist cdc up`")
    from pipeline import provision

    provision.ensure(settings, "kafka")  # the raw topic, its dead-letter topic and the archive's grants
    names = stream_names()
    loc = s3_location(settings)
    with archive_lock(settings.state_dir):
        archiver = RawArchiver(kafka.client_config("archive"), loc, names.raw, settings.raw_prefix,
                               flush_records=flush_records, dead_letter=names.dead_letter(names.raw))
        return archiver.run(duration, idle), loc.uri(f"{settings.raw_prefix}/{names.raw}/")
