"""The serving sink: the windowed topics upserted into Cassandra, and the reads the live dashboard makes.

Both windowed topics are consumed with ``isolation.level=read_committed`` (an aborted Flink transaction is
never written). Each record is checked against its topic's contract (the generated JSON Schema) and typed for
its table (``pipeline/contracts/render_cassandra.py``); a record that breaks the contract goes to the topic's
dead-letter topic with the reason, the rest is written with a prepared ``INSERT`` (an upsert: the primary key
holds the contract's key, so writing a record twice leaves one row); a tombstone (Flink's upsert sink writes
one when every payment of a window key went away) deletes its row, named whole by the Kafka key. Writes run
concurrently per poll batch,
the last record of a key in a batch wins, and offsets are committed only after every write of the batch (and
every dead letter) succeeded: a crash replays from the last commit, which rewrites the same rows.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from emulation.resources import engine
from pipeline.contracts import load_registry, stream_names
from pipeline.contracts.event_validation import event_errors, validator
from pipeline.contracts.render_cassandra import UPDATED_COLUMN, CassandraTable, serving_tables
from pipeline.settings import Settings
from pipeline.speed.topics import dead_letter, producer_config

if TYPE_CHECKING:
    from cassandra.cluster import Session

GROUP = "olist-serving-cassandra"
log = logging.getLogger(__name__)


class RecordError(ValueError):
    """A record that cannot be written: the message is the dead letter's reason."""


# -- typing a record for its table ---------------------------------------------------------------


def parse_timestamp(value: Any) -> dt.datetime:
    """An aware UTC datetime from Flink's ``2026-11-27 21:00:10.000``, ISO-8601 (``...T21:00:10Z``, with an
    offset or without: UTC) or epoch milliseconds."""
    if isinstance(value, bool):
        raise RecordError(f"{value!r} is not a timestamp")
    if isinstance(value, int | float | decimal.Decimal):
        return dt.datetime.fromtimestamp(float(value) / 1000, dt.UTC)
    if not isinstance(value, str):
        raise RecordError(f"{value!r} is not a timestamp")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise RecordError(f"{value!r} is not an ISO-8601 timestamp") from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _convert(cql_type: str, value: Any) -> Any:
    if value is None:
        return None
    if cql_type == "timestamp":
        return parse_timestamp(value)
    if cql_type == "decimal":
        return value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value))
    if cql_type in ("double", "float"):
        return float(value)
    if cql_type in ("bigint", "int", "smallint"):
        number = decimal.Decimal(str(value))
        if number != number.to_integral_value():
            raise RecordError(f"{value!r} is not an integer")
        return int(number)
    if cql_type == "boolean":
        return bool(value)
    if cql_type == "date":
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    return str(value)


def row_values(table: CassandraTable, event: dict[str, Any], updated_at: dt.datetime) -> tuple[Any, ...]:
    """The bound values of ``table.insert_cql()`` for one record (already checked against the contract)."""
    typed: dict[str, Any] = {}
    for col in table.columns:
        if col.name == UPDATED_COLUMN or col.source:
            continue
        try:
            typed[col.name] = _convert(col.type, event.get(col.name))
        except (RecordError, ValueError, ArithmeticError) as exc:
            raise RecordError(f"{col.name}: {exc}") from None
    out = []
    for col in table.columns:
        if col.name == UPDATED_COLUMN:
            out.append(updated_at)
        elif col.source:
            out.append(typed[col.source].date())  # the UTC day of the timestamp
        else:
            out.append(typed[col.name])
    return tuple(out)


def decode_key(table: CassandraTable, key: bytes | None) -> tuple[Any, ...]:
    """The primary-key values (in ``table.primary_key`` order) of a tombstone's Kafka key: the window is
    named whole (start, end, dimensions), so its row can be deleted; :class:`RecordError` says why not."""
    try:
        fields = json.loads(key or b"null", parse_float=decimal.Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"tombstone key is not JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise RecordError(f"tombstone key {key!r} is not a JSON object")
    types = {c.name: c for c in table.columns}
    out = []
    for name in table.primary_key:
        col = types[name]
        source = col.source or name
        if fields.get(source) is None:
            raise RecordError(f"tombstone key lacks {source}")
        try:
            value = _convert(types[source].type, fields[source])
        except (RecordError, ValueError, ArithmeticError) as exc:
            raise RecordError(f"tombstone key {source}: {exc}") from None
        out.append(value.date() if col.source else value)
    return tuple(out)


def decode(topic: str, table: CassandraTable, value: bytes | None, updated_at: dt.datetime) -> tuple[Any, ...]:
    """Parse, check against the contract and type one record; :class:`RecordError` says why not."""
    if value is None:
        raise RecordError("tombstone: decode its key with decode_key")
    try:
        event = json.loads(value, parse_float=decimal.Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"not JSON: {exc}") from None
    if not validator(topic).is_valid(event):  # the quick check first; the reasons only for a bad record
        raise RecordError("; ".join(event_errors(topic, event)))
    return row_values(table, event, updated_at)


# -- the sink ------------------------------------------------------------------------------------


@dataclass
class SinkReport:
    records: int = 0
    written: int = 0
    deleted: int = 0  # rows removed on a tombstone
    dead_lettered: int = 0
    batches: int = 0
    seconds: float = 0.0
    per_topic: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


class CassandraSink:
    """Consume the windowed topics and upsert them into their Cassandra tables; see the module docstring."""

    def __init__(self, consumer_config: dict, session: Session, tables: Sequence[CassandraTable] | None = None,
                 group: str = GROUP, batch_size: int = 1000, concurrency: int = 32, rows_per_request: int = 40,
                 dead_letters: dict[str, str] | None = None,
                 after_write: Callable[[int], None] | None = None, instance_id: str | None = None) -> None:
        self.tables = {t.topic: t for t in (tables or serving_tables(load_registry()))}
        self.dead_letters = dead_letters or {topic: stream_names().dead_letter(topic) for topic in self.tables}
        self.session, self.batch_size, self.concurrency = session, batch_size, concurrency
        self.rows_per_request = rows_per_request  # rows of one partition per UNLOGGED batch (about 4 KiB)
        self._partition_index = {topic: [t.column_names.index(k) for k in t.partition_key]
                                 for topic, t in self.tables.items()}
        self.after_write = after_write  # a hook between the writes and the commit (tests crash there)
        self.inserts = {topic: session.prepare(t.insert_cql()) for topic, t in self.tables.items()}
        self.deletes = {topic: session.prepare(t.delete_cql()) for topic, t in self.tables.items()}
        self.producer = Producer(producer_config(consumer_config))
        # A dead member is noticed in 10 s; the supervised sink is a static member, so a restarted one takes its
        # partitions back at once instead of waiting for that.
        membership = {"group.instance.id": instance_id} if instance_id else {}
        self.consumer = Consumer({**consumer_config, "group.id": group, "enable.auto.commit": False,
                                  "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                                  "enable.partition.eof": True, "session.timeout.ms": 10_000, **membership})
        self.assigned_at: float | None = None
        self.consumer.subscribe(list(self.tables), on_assign=self._on_assign)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned_at = time.monotonic()

    def _write_batch(self, messages: list[Message], report: SinkReport) -> None:
        from cassandra.concurrent import execute_concurrent

        updated_at = dt.datetime.now(dt.UTC)
        # The last record of a key wins; None = a tombstone (every payment of that window key went away).
        rows: dict[tuple[str, tuple[Any, ...]], tuple[Any, ...] | None] = {}
        offsets: dict[tuple[str, int], int] = {}
        dead = 0
        for msg in messages:
            topic = msg.topic()
            table = self.tables[topic]
            try:
                if msg.value() is None:
                    key, values = decode_key(table, msg.key()), None
                else:
                    values = decode(topic, table, msg.value(), updated_at)
                    key = tuple(values[table.column_names.index(k)] for k in table.primary_key)
            except RecordError as exc:
                dead_letter(self.producer, self.dead_letters[topic], msg, [str(exc)])
                dead += 1
            else:
                rows.pop((topic, key), None)
                rows[(topic, key)] = values
            offsets[(topic, msg.partition())] = msg.offset() + 1
            report.per_topic[topic] = report.per_topic.get(topic, 0) + 1
        statements = self._statements(rows)
        if statements:
            for ok, result in execute_concurrent(self.session, statements, concurrency=self.concurrency,
                                                 raise_on_first_error=True, results_generator=True):
                if not ok:  # pragma: no cover - raise_on_first_error raises first
                    raise result
        if dead and self.producer.flush(30) > 0:
            raise RuntimeError("kafka: dead letters not delivered within 30 s; offsets left uncommitted")
        if self.after_write:
            self.after_write(len(rows))
        self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
        report.records += len(messages)
        report.deleted += sum(v is None for v in rows.values())
        report.written += len(rows) - sum(v is None for v in rows.values())
        report.dead_lettered += dead
        report.batches += 1

    def _statements(self, rows: dict[tuple[str, tuple[Any, ...]], tuple[Any, ...] | None]) -> list[tuple[Any, Any]]:
        """The writes of a batch: upserts of one Cassandra partition go together in UNLOGGED batches (one
        request, applied atomically on its replica), a lone row as a plain bound statement; a tombstone's
        key becomes a DELETE of its row."""
        from cassandra.query import BatchStatement, BatchType

        groups: dict[tuple[str, tuple[Any, ...]], list[tuple[Any, ...]]] = {}
        out: list[tuple[Any, Any]] = []
        for (topic, key), values in rows.items():
            if values is None:
                out.append((self.deletes[topic], key))
                continue
            partition = tuple(values[i] for i in self._partition_index[topic])
            groups.setdefault((topic, partition), []).append(values)
        for (topic, _), group in groups.items():
            insert = self.inserts[topic]
            for i in range(0, len(group), self.rows_per_request):
                chunk = group[i:i + self.rows_per_request]
                if len(chunk) == 1:
                    out.append((insert, chunk[0]))
                    continue
                batch = BatchStatement(BatchType.UNLOGGED)
                for values in chunk:
                    batch.add(insert, values)
                out.append((batch, None))
        return out

    def run(self, duration: float | None = None, until_idle: float | None = None,
            stop: threading.Event | None = None) -> SinkReport:
        """Sink for ``duration`` seconds, or until nothing arrived for ``until_idle`` seconds after the partitions
        were assigned (once ``stop`` is set, when one is given); then close the consumer."""
        report = SinkReport()
        started = time.monotonic()
        last_data: float | None = None
        try:
            while True:
                now = time.monotonic()
                if stop is not None and until_idle is None and stop.is_set():
                    break
                if duration is not None and now - started >= duration:
                    break
                quiet_since = last_data or self.assigned_at
                idle = until_idle is not None and quiet_since is not None and now - quiet_since >= until_idle
                if idle and (stop is None or stop.is_set()):  # with a stop: idle counts only once it is set
                    break
                batch = []
                for msg in self.consumer.consume(self.batch_size, timeout=0.2):
                    err = msg.error()
                    if err is None:
                        batch.append(msg)
                    elif err.code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(f"kafka: {err}")
                if batch:
                    self._write_batch(batch, report)
                    last_data = time.monotonic()
        finally:
            report.seconds = time.monotonic() - started
            self.consumer.close()
            self.producer.flush(10)
        return report


# -- wiring from settings ------------------------------------------------------------------------


def run_sink(settings: Settings, duration: float | None = None, until_idle: float | None = None,
             stop: threading.Event | None = None, group: str = GROUP, batch_size: int = 1000,
             instance_id: str | None = None) -> SinkReport:
    """Sink the windowed topics of the local Kafka into the local Cassandra (both must be running); the
    keyspace, tables and topics (with their dead-letter topics) are created when missing."""
    from emulation.service import ServiceError
    from pipeline import provision

    kafka, cassandra = engine("kafka", settings), engine("cassandra", settings)
    for service in (kafka, cassandra):
        if not service.available():
            raise ServiceError(f"{service.name} is not running: start it with `olist up {service.name}`")
    provision.ensure(settings, "kafka", "cassandra")  # topics, grants, keyspace and tables: the sink only writes
    with cassandra.session(role="sink") as session:
        sink = CassandraSink(kafka.client_config("sink"), session, group=group, batch_size=batch_size,
                             instance_id=instance_id)
        return sink.run(duration, until_idle, stop)
