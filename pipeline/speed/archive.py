"""The raw topic archived to S3 as Parquet, in the seed's layout, exactly once.

Files are ``PREFIX/TOPIC/year=YYYY/month=MM/day=DD/hour=HH/TOPIC+PARTITION+STARTOFFSET.parquet`` (the hour
of the records' Kafka timestamps, UTC). A file is written when it holds ``flush_records`` records, when it
is ``flush_seconds`` old, or when the hour changes; its offsets are committed only after the upload. A
crash before the commit makes the restart read from the same offset and write a file of the same name,
which replaces the first: every offset ends up in exactly one file.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from pipeline.contracts.event_validation import event_errors
from pipeline.speed import topics
from pipeline.speed.topics import producer_config
from pipeline.storage import S3Location

SCHEMA = pa.schema([
    pa.field("topic", pa.string(), nullable=False),
    pa.field("partition", pa.int32(), nullable=False),
    pa.field("offset", pa.int64(), nullable=False),
    pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
    pa.field("key", pa.string()),
    pa.field("value", pa.string()),  # null for a tombstone
])


def archive_key(prefix: str, topic: str, partition: int, start_offset: int, hour: dt.datetime) -> str:
    return (f"{prefix}/{topic}/year={hour:%Y}/month={hour:%m}/day={hour:%d}/hour={hour:%H}/"
            f"{topic}+{partition}+{start_offset:010d}.parquet")


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


def _violations(topic: str, value: bytes) -> list[str]:
    try:
        event = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"not JSON: {exc}"]
    return event_errors(topic, event)


class RawArchiver:
    """Consume ``topic`` (read_committed) and write it to S3 Parquet; see the module docstring."""

    def __init__(self, consumer_config: dict, loc: S3Location, topic: str, prefix: str = "raw",
                 group: str = "olist-raw-archive", flush_records: int = 10_000, flush_seconds: float = 30.0,
                 after_upload: Callable[[str], None] | None = None, dead_letter: str | None = None) -> None:
        self.loc, self.topic, self.prefix = loc, topic, prefix
        # Events that break the topic's contract are copied, with the reason, to ``dead_letter`` (and still
        # archived raw); the archive keeps going.
        self.dead_letter = dead_letter
        self.producer = Producer(producer_config(consumer_config)) if dead_letter else None
        self.flush_records, self.flush_seconds = flush_records, flush_seconds
        self.after_upload = after_upload  # a hook between upload and commit (tests crash there)
        self.fs = loc.arrow_fs()
        self.consumer = Consumer({**consumer_config, "group.id": group, "enable.auto.commit": False,
                                  "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                                  "enable.partition.eof": True})
        self.assigned_at: float | None = None
        self.consumer.subscribe([topic], on_assign=self._on_assign)
        self.buffers: dict[int, _Buffer] = {}

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned_at = time.monotonic()

    def _flush(self, partition: int, report: ArchiveReport) -> None:
        buf = self.buffers.pop(partition, None)
        if not buf or not buf.rows:
            return
        table = pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in buf.rows], schema=SCHEMA)
        start, last = buf.rows[0][2], buf.rows[-1][2]
        key = archive_key(self.prefix, self.topic, partition, start, buf.hour)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="snappy")
        with self.fs.open_output_stream(self.loc.path(key)) as out:
            out.write(sink.getvalue())
        if self.producer:
            self.producer.flush(30)  # dead letters are durable before the offsets move on
        if self.after_upload:
            self.after_upload(key)
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
                         key.decode() if key is not None else None, value.decode() if value is not None else None))
        if len(buf.rows) >= self.flush_records:
            self._flush(msg.partition(), report)

    def run(self, duration: float | None = None, until_idle: float | None = None,
            stop: threading.Event | None = None) -> ArchiveReport:
        """Archive for ``duration`` seconds, or until nothing arrived for ``until_idle`` seconds after the
        partitions were assigned (once ``stop`` is set, when one is given); flush at the end."""
        report = ArchiveReport()
        started = time.monotonic()
        last_data: float | None = None
        try:
            while True:
                now = time.monotonic()
                if duration is not None and now - started >= duration:
                    break
                quiet_since = last_data or self.assigned_at
                idle = quiet_since is not None and until_idle is not None and now - quiet_since >= until_idle
                if idle and (stop is None or stop.is_set()):
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
