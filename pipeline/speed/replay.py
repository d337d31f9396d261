"""What recomputing the Flink job's view reads, and roughly costs: the verdict `olist plan` gives before a change.

The master dataset is the raw archive (every manifested file, in offset order) and the raw topic after the
archive's end; Kafka alone holds only its retention. :func:`replay_reads` counts both from the manifests and the
topic's offsets, without reading a record. :class:`ArchiveFeed` copies the archive to the feed topic a replaying job
reads first (flink/payments_windows.py ``--fresh-source`` then takes it on from the raw topic).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from emulation.resources import engine
from pipeline.contracts import stream_names
from pipeline.lake.archive import ArchiveLayout
from pipeline.settings import Settings
from pipeline.speed.topics import producer_config

# Changes per second the job recomputes in a replay on this kind of machine (2 cores): 2,246 from the archive's feed
# and 2,134 from the topic with its state restored, in one run of tests/bench/bench_replay.py (`nox -s bench`).
REPLAY_RATE = 2_200


@dataclass(frozen=True)
class ReplayReads:
    """The raw history a replay can read: the archive's manifested files and the topic's retained offsets."""

    archive_files: int
    archive_records: int
    archive_end: dict[int, int]  # per partition: the archive's next offset
    topic: dict[int, tuple[int, int]]  # per partition: [earliest retained, end)

    @property
    def topic_records(self) -> int:
        return sum(high - low for low, high in self.topic.values())

    @property
    def tail_records(self) -> int:
        """Records of the topic after the archive's end (what the archive does not hold yet)."""
        return sum(max(0, high - max(low, self.archive_end.get(p, 0))) for p, (low, high) in self.topic.items())

    @property
    def lost_to_retention(self) -> int:
        """Archived records the topic no longer holds: a replay of the topic alone would leave them out."""
        return sum(max(0, min(low, self.archive_end.get(p, 0))) for p, (low, _) in self.topic.items())

    def seconds(self, records: int) -> float:
        return records / REPLAY_RATE

    def describe_topic_replay(self) -> str:
        """The replay of the raw topic from its earliest retained offset (what a restart from no state reads)."""
        ranges = ", ".join(f"partition {p} [{low:,}, {high:,})" for p, (low, high) in sorted(self.topic.items()))
        text = (f"it reads the raw topic {ranges}: {self.topic_records:,} changes, about "
                f"{self.seconds(self.topic_records):.0f} s at ~{REPLAY_RATE:,}/s")
        if self.lost_to_retention:
            text += (f"; {self.lost_to_retention:,} older changes are only in the archive ({self.archive_files} files) "
                     f"and their windows are not recomputed")
        return text


def replay_reads(settings: Settings) -> ReplayReads:
    from pipeline.speed.topics import offset_ranges
    from pipeline.storage import s3_location

    names = stream_names()
    layout = ArchiveLayout(s3_location(settings), settings.raw_prefix, names.raw)
    manifests = layout.manifests()
    topic = offset_ranges(engine("kafka", settings).client_config(), names.raw)
    return ReplayReads(len(manifests), sum(m.records for m in manifests), layout.progress(manifests),
                       topic)


# -- the archive's feed --------------------------------------------------------------------------

OFFSET_HEADER = "olist.raw-offset"  # where a fed record was in the raw topic


@dataclass
class FeedReport:
    records: int = 0
    transactions: int = 0
    resumed_from: dict[int, int] = field(default_factory=dict)  # per partition: the first offset this run fed


class ArchiveFeed:
    """The archive's records copied, in offset order, to a feed topic a replaying job reads: every manifested record
    below ``until`` (per partition: where the job goes on from the raw topic) once, each on its own partition with its
    Kafka timestamp, key and value, and its raw offset in a header. Written in transactions; a feed killed midway
    goes on after the last record a read_committed reader sees (an unfinished transaction is aborted as the producer
    is fenced), so every record is fed exactly once."""

    def __init__(self, client_config: dict, layout: ArchiveLayout, topic: str, batch: int = 5_000,
                 before_commit: Callable[[int], None] | None = None) -> None:
        self.client, self.layout, self.topic, self.batch = client_config, layout, topic, batch
        self.before_commit = before_commit  # a hook: a transaction sent, not committed (tests crash there)

    def fed_through(self) -> dict[int, int]:
        """Per partition, the raw offset after the last record fed and committed (0 when none)."""
        consumer = Consumer({**self.client, "group.id": "olist-replay-feed", "enable.auto.commit": False,
                             "isolation.level": "read_committed", "enable.partition.eof": True})
        try:
            partitions = consumer.list_topics(self.topic, timeout=10).topics[self.topic].partitions
            out, pending = dict.fromkeys(partitions, 0), set(partitions)
            starts = []
            for p in partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)
                # the last committed record lies within the last two transactions and their markers
                starts.append(TopicPartition(self.topic, p, max(low, high - 2 * self.batch - 4)))
                if high <= low:
                    pending.discard(p)
            consumer.assign(starts)
            while pending:
                msg = consumer.poll(5)
                if msg is None:
                    raise RuntimeError(f"kafka: {self.topic} did not answer while reading its last records")
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise RuntimeError(f"kafka: {msg.error()}")
                offset = dict(msg.headers() or []).get(OFFSET_HEADER)
                if offset is not None:
                    out[msg.partition()] = max(out[msg.partition()], int(offset) + 1)
            return out
        finally:
            consumer.close()

    def run(self, until: dict[int, int]) -> FeedReport:
        report = FeedReport()
        done = self.fed_through()
        report.resumed_from = {p: done.get(p, 0) for p in until}
        producer = Producer(producer_config(self.client, **{"transactional.id": f"olist-replay-feed-{self.topic}"}))
        producer.init_transactions(30)  # fences and aborts an earlier run's unfinished transaction
        pending = 0
        producer.begin_transaction()
        for m in self.layout.manifests():
            start, end = max(m.start, done.get(m.partition, 0)), min(m.end, until.get(m.partition, 0))
            if start >= end:
                continue
            for row in self.layout.read_file(m, start, end).sort_by("kafka_offset").to_pylist():
                stamp = int(row["kafka_timestamp"].timestamp() * 1000)
                producer.produce(self.topic, partition=m.partition, timestamp=stamp,
                                 key=None if row["record_key"] is None else row["record_key"].encode(),
                                 value=None if row["record_value"] is None else row["record_value"].encode(),
                                 headers={OFFSET_HEADER: str(row["kafka_offset"])})
                pending += 1
                report.records += 1
                if pending >= self.batch:
                    self._commit(producer, report)
                    pending = 0
                    producer.begin_transaction()
        self._commit(producer, report)
        return report

    def _commit(self, producer: Producer, report: FeedReport) -> None:
        if self.before_commit:
            producer.flush(30)
            self.before_commit(report.records)
        producer.commit_transaction(60)
        report.transactions += 1
