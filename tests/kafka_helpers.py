"""Reading a topic whole, the way the tests check what a lane wrote: every record of every partition from the
start (or given offsets) up to the end it has now."""

from __future__ import annotations

import decimal
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from emulation.kafka import KafkaService


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str] = field(default_factory=dict)
    timestamp_ms: int = 0  # the broker's (or the producer's) timestamp

    def json_key(self) -> Any:
        return None if self.key is None else json.loads(self.key, parse_float=decimal.Decimal)

    def json_value(self) -> Any:
        return None if self.value is None else json.loads(self.value, parse_float=decimal.Decimal)


def read_topic(kafka: KafkaService, topic: str, isolation: str = "read_committed", timeout: float = 30,
               start: dict[int, int] | None = None) -> list[Record]:
    """Every record of ``topic`` (``read_committed`` by default) up to each partition's end, in partition and
    offset order; fails when the end is not reached within ``timeout``."""
    consumer = Consumer(kafka.client_config(**{"group.id": f"read-{uuid.uuid4().hex}", "enable.auto.commit": False,
                                               "isolation.level": isolation, "enable.partition.eof": True}))
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, (start or {}).get(p, 0)) for p in partitions])
        pending, out = set(partitions), []
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, f"{topic}: partitions {sorted(pending)} not read to their end"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                pending.discard(msg.partition())
                continue
            headers = {k: v.decode() for k, v in msg.headers() or []}
            out.append(Record(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), headers,
                              msg.timestamp()[1]))
    finally:
        consumer.close()
    return sorted(out, key=lambda r: (r.partition, r.offset))


def fresh_topic(kafka: KafkaService, spec, timeout: float = 30) -> None:
    """``spec``'s topic, empty: deleted if it exists, then made again once the deletion is through (for a test
    that needs a contract's own topic name, and runs once per S3 emulator)."""
    kafka.delete_topics([spec.name])
    deadline = time.monotonic() + timeout
    while not kafka.create_topics([spec]):
        assert time.monotonic() < deadline, f"{spec.name}: still being deleted after {timeout:.0f}s"
        time.sleep(0.2)
