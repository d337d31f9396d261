"""The streaming lane run as one piece (the demo's): Debezium registered, the Flink job windowing the raw
topic, the serving sink writing its windows to Cassandra, the simulator committing changes, a tap counting
them on `olist.order_payments` with their lag, and the raw archive writing them to S3."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from emulation.kafka import KafkaService
from emulation.postgres import PostgresService
from pipeline.settings import Settings
from pipeline.speed import cdc
from pipeline.speed.archive import ArchiveReport, RawArchiver
from pipeline.speed.simulate import SimulationReport, simulate
from pipeline.speed.sink import SinkReport, run_sink
from pipeline.storage import s3_location

RAW_TOPIC = "olist.order_payments"
RAW_PREFIX = "raw"


@dataclass
class TopicTap:
    """Streamed (not snapshot) change events seen on the raw topic from a starting point, with their lag
    from commit (``source.ts_ms``) to the broker's timestamp."""

    events: int = 0
    tombstones: int = 0
    lags_ms: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        if not self.lags_ms:
            return float("nan")
        ordered = sorted(self.lags_ms)
        return statistics.median(ordered) if q == 50 else ordered[round(q / 100 * (len(ordered) - 1))]


def end_offsets(kafka: KafkaService, topic: str = RAW_TOPIC) -> dict[int, int]:
    consumer = Consumer(kafka.client_config(**{"group.id": "olist-offsets"}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        consumer.close()


def tap(kafka: KafkaService, start: dict[int, int], tally: TopicTap, done: threading.Event,
        expected: Callable[[], int | None], timeout: float) -> None:
    """Read from ``start`` until ``expected()`` streamed events arrived (or ``timeout`` after ``done``)."""
    consumer = Consumer(kafka.client_config(**{"group.id": "olist-stream-tap", "enable.auto.commit": False,
                                                "isolation.level": "read_committed"}))
    consumer.assign([TopicPartition(RAW_TOPIC, p, o) for p, o in start.items()])
    deadline = None
    try:
        while True:
            if done.is_set():
                deadline = deadline or time.monotonic() + timeout
                want = expected()
                if (want is not None and tally.events >= want) or time.monotonic() > deadline:
                    return
            for msg in consumer.consume(500, 0.2):
                if msg.error():
                    continue
                if msg.value() is None:
                    tally.tombstones += 1
                    continue
                source = json.loads(msg.value())["source"]
                if source.get("snapshot") in (None, "false", False):
                    tally.events += 1
                    tally.lags_ms.append(msg.timestamp()[1] - source["ts_ms"])
    finally:
        consumer.close()


@dataclass
class StreamReport:
    simulation: SimulationReport
    topic: TopicTap
    archive: ArchiveReport
    archive_uri: str
    raw_topic: str = RAW_TOPIC
    served: SinkReport | None = None  # windows the sink wrote to Cassandra (None: serving not run)

    @property
    def complete(self) -> bool:
        """Every committed change reached the topic."""
        return self.topic.events == self.simulation.changes


def run_stream(settings: Settings, rate: float, seconds: float, seed: int,
               progress: Callable[[int, float], None] | None = None, drain_timeout: float = 60,
               serving: bool = True) -> StreamReport:
    """Register the connector (idempotent) and, with ``serving``, start the Flink job (Cassandra must run);
    then simulate for ``seconds`` while the tap, the archive and the serving sink read their topics; return
    once every change is on the topic, the archive has flushed and the sink has written what Flink closed."""
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
    start = end_offsets(kafka)
    tally, done = TopicTap(), threading.Event()
    report: list[SimulationReport] = []
    tap_thread = threading.Thread(target=tap, args=(kafka, start, tally, done,
                                                    lambda: report[0].changes if report else None, drain_timeout),
                                  name="olist-tap", daemon=True)
    loc = s3_location(settings)
    archiver = RawArchiver(kafka.client_config(), loc, RAW_TOPIC, RAW_PREFIX, flush_seconds=5,
                           dead_letter=f"{RAW_TOPIC}.dlq")
    archive_report: list[ArchiveReport] = []
    stop_archive = threading.Event()

    def archive() -> None:
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
    return StreamReport(report[0], tally, archived, loc.uri(f"{RAW_PREFIX}/{RAW_TOPIC}/"),
                        served=sink_reports[0] if sink_reports else None)
