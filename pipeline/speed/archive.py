"""The raw topic archived to S3 as Parquet, in the seed's layout, exactly once: the master dataset.

Files are ``PREFIX/TOPIC/year=YYYY/month=MM/day=DD/hour=HH/TOPIC+PARTITION+STARTOFFSET.parquet`` (the hour of the
records' Kafka timestamps, UTC). A file is written when it holds ``flush_records`` records, when it is
``flush_seconds`` old, or when the hour changes; then its manifest (``PREFIX/TOPIC/_manifests/partition=P/
START-END.json``: the file, its offsets ``[start, end)``, records and times) is written, which commits it.

The archive's progress lives with its files, as bronze's does: at start it reads the manifests and goes on
from the end of the last one (Kafka consumer offsets play no part). A crash before a manifest makes the restart
write a file of the same name, which replaces the first; readers take only manifested files and, of each, only
its manifested offsets: every offset ends up archived exactly once. When the files are gone (an emptied bucket)
or Kafka no longer holds the next offset (retention), it archives from the earliest offset Kafka still holds and
records the range it could not recover (``PREFIX/TOPIC/_gaps/``), never a silent gap.

The layout (keys, manifests, gaps, reading back) is the lake's (``pipeline.lake.archive``): the batch lane reads the
archive through it too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from pipeline.contracts.event_validation import event_errors
from pipeline.lake.archive import SCHEMA, ArchivedFile, ArchiveLayout, Gap, archive_key
from pipeline.speed import topics
from pipeline.speed.topics import producer_config
from pipeline.storage import S3Location

GROUP = "olist-raw-archive"
@dataclass
class _Buffer:
    hour: dt.datetime
    opened: float
    rows: list[tuple] = field(default_factory=list)


@dataclass
class ArchiveReport:
    records: int = 0
    files: list[str] = field(default_factory=list)
    dead_lettered: int = 0
    started_from: dict[int, int] = field(default_factory=dict)  # partition: first offset this run archived
    gaps: list[Gap] = field(default_factory=list)  # ranges Kafka no longer held (recorded, never silent)


def _violations(topic: str, value: bytes) -> list[str]:
    try:
        event = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"not JSON: {exc}"]
    return event_errors(topic, event)


class ArchiveBusy(RuntimeError):
    """Another archiver of this deployment holds the archive (two would write overlapping files)."""


@contextlib.contextmanager
def archive_lock(state_dir: Path) -> Iterator[None]:
    """Hold the one-archiver-at-a-time lock of a state folder; :class:`ArchiveBusy` when another holds it."""
    path = state_dir / "archive" / "archive.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArchiveBusy(f"another archiver holds {path}") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class RawArchiver:
    """Read ``topic`` (read_committed) from where the archive's manifests end and write it to S3 Parquet."""

    def __init__(self, consumer_config: dict, loc: S3Location, topic: str, prefix: str = "raw",
                 group: str = GROUP, flush_records: int = 10_000, flush_seconds: float = 30.0,
                 after_upload: Callable[[str], None] | None = None, dead_letter: str | None = None) -> None:
        self.loc, self.topic, self.prefix = loc, topic, prefix
        self.layout = ArchiveLayout(loc, prefix, topic)
        # Events that break the topic's contract are copied, with the reason, to ``dead_letter`` (and still
        # archived raw); the archive keeps going.
        self.dead_letter = dead_letter
        self.producer = Producer(producer_config(consumer_config)) if dead_letter else None
        self.flush_records, self.flush_seconds = flush_records, flush_seconds
        self.after_upload = after_upload  # a hook between upload and manifest (tests crash there)
        # The group only names the consumer (lag shows in Kafka's tools); the position comes from the manifests.
        self.consumer = Consumer({**consumer_config, "group.id": group, "enable.auto.commit": False,
                                  "isolation.level": "read_committed", "enable.partition.eof": True})
        self.buffers: dict[int, _Buffer] = {}
        self.assigned_at: float | None = None
        self.behind: list[TopicPartition] = []  # partitions not yet read up to their end offset at assignment

    def _assign(self, report: ArchiveReport) -> None:
        """Start each partition at the archive's next offset, or at the earliest Kafka holds (recording the gap)."""
        progress = self.layout.progress()
        partitions = self.consumer.list_topics(self.topic, timeout=10).topics[self.topic].partitions
        assignment, self.behind = [], []
        for p in sorted(partitions):
            low, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)
            start = progress.get(p, 0)
            if start < low:
                gap = Gap(p, start, low, dt.datetime.now(dt.UTC).isoformat())
                self.layout.record_gap(gap)
                report.gaps.append(gap)
                start = low
            report.started_from[p] = start
            assignment.append(TopicPartition(self.topic, p, start))
            if start < high:
                self.behind.append(TopicPartition(self.topic, p, high))
        self.consumer.assign(assignment)
        self.assigned_at = time.monotonic()

    def _caught_up(self) -> bool:
        """Whether every partition has been read to the end it had at assignment (the consumer's position, which
        also steps over transaction markers): only then can the archive be idle."""
        if self.behind:
            ends = {tp.partition: tp.offset for tp in self.behind}
            at = self.consumer.position([TopicPartition(self.topic, p) for p in ends])
            self.behind = [TopicPartition(self.topic, tp.partition, ends[tp.partition]) for tp in at
                           if tp.offset < ends[tp.partition]]
        return not self.behind

    def _flush(self, partition: int, report: ArchiveReport) -> None:
        buf = self.buffers.pop(partition, None)
        if not buf or not buf.rows:
            return
        table = pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in buf.rows], schema=SCHEMA)
        start, last = buf.rows[0][2], buf.rows[-1][2]
        key = archive_key(self.prefix, self.topic, partition, start, buf.hour)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="snappy")
        with self.layout.fs.open_output_stream(self.loc.path(key)) as out:
            out.write(sink.getvalue())
        if self.producer:
            self.producer.flush(30)  # dead letters are durable before the file is committed
        if self.after_upload:
            self.after_upload(key)
        stamps = [int(r[3].timestamp() * 1000) for r in buf.rows]
        self.layout.commit(ArchivedFile(key, partition, start, last + 1, len(buf.rows), min(stamps), max(stamps)))
        self.consumer.commit(offsets=[TopicPartition(self.topic, partition, last + 1)], asynchronous=False)
        report.files.append(key)
        report.records += len(buf.rows)

    def _add(self, msg: Message, report: ArchiveReport) -> None:
        ts = dt.datetime.fromtimestamp(msg.timestamp()[1] / 1000, dt.UTC)
        hour = ts.replace(minute=0, second=0, microsecond=0)
        buf = self.buffers.get(msg.partition())
        if buf and buf.hour != hour:
            self._flush(msg.partition(), report)
            buf = None
        if buf is None:
            buf = self.buffers[msg.partition()] = _Buffer(hour, time.monotonic())
        key, value = msg.key(), msg.value()
        if self.producer and value is not None:
            reasons = _violations(self.topic, value)
            if reasons:
                topics.dead_letter(self.producer, self.dead_letter, msg, reasons)
                report.dead_lettered += 1
        buf.rows.append((msg.topic(), msg.partition(), msg.offset(), ts,
                         key.decode(errors="replace") if key is not None else None,
                         value.decode(errors="replace") if value is not None else None))
        if len(buf.rows) >= self.flush_records:
            self._flush(msg.partition(), report)

    def run(self, duration: float | None = None, until_idle: float | None = None,
            stop: threading.Event | None = None) -> ArchiveReport:
        """Archive for ``duration`` seconds, or until nothing arrived for ``until_idle`` seconds after reading what
        the topic held at the start (once ``stop`` is set, when one is given); flush at the end."""
        report = ArchiveReport()
        started = time.monotonic()
        last_data: float | None = None
        try:
            self._assign(report)
            while True:
                now = time.monotonic()
                if duration is not None and now - started >= duration:
                    break
                quiet_since = last_data or self.assigned_at
                idle = (quiet_since is not None and until_idle is not None and now - quiet_since >= until_idle
                        and self._caught_up())
                if idle and (stop is None or stop.is_set()):
                    break
                if stop is not None and until_idle is None and stop.is_set():
                    break
                msg = self.consumer.poll(0.2)
                if msg is not None and not msg.error():
                    self._add(msg, report)
                    last_data = time.monotonic()
                elif msg is not None and msg.error().code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"kafka: {msg.error()}")
                for partition, buf in list(self.buffers.items()):
                    if time.monotonic() - buf.opened >= self.flush_seconds:
                        self._flush(partition, report)
            for partition in list(self.buffers):
                self._flush(partition, report)
        finally:
            self.consumer.close()
        return report
