"""Reading and writing the speed lane's Kafka topics: end offsets, dead letters, and the tap that counts the
streamed changes on the raw topic with their lag."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition


def connection(client_config: Mapping[str, object]) -> dict[str, object]:
    """The keys of a client config that say where the cluster is and who connects (not what a consumer does)."""
    return {k: v for k, v in client_config.items()
            if k in ("bootstrap.servers", "logger") or k.startswith(("security.", "sasl.", "ssl."))}


def producer_config(client_config: Mapping[str, object], **extra: object) -> dict[str, object]:
    """An idempotent producer's config on the same cluster, as the same principal, as ``client_config``."""
    return connection(client_config) | {"enable.idempotence": True, **extra}


def dead_letter(producer: Producer, topic: str, msg: Message, reasons: list[str]) -> None:
    """Copy ``msg`` to the dead-letter ``topic`` with why (header ``olist.reason``) and where it was
    (``olist.source``: topic/partition/offset). A record too large to copy with its headers is dead-lettered
    without its value (header ``olist.value-omitted``): it stays at its offset in the topic and the archive."""
    headers = {"olist.reason": "; ".join(reasons)[:2000],
               "olist.source": f"{msg.topic()}/{msg.partition()}/{msg.offset()}"}
    try:
        producer.produce(topic, key=msg.key(), value=msg.value(), headers=headers)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
            raise
        size = len(msg.value() or b"")
        producer.produce(topic, key=msg.key(), value=None,
                         headers={**headers, "olist.value-omitted": f"{size} bytes, too large to copy"})


def offset_ranges(client_config: Mapping[str, object], topic: str) -> dict[int, tuple[int, int]]:
    """The earliest offset Kafka still holds and the high-water mark, of each partition of ``topic``."""
    consumer = Consumer({**client_config, "group.id": "olist-offsets"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions}
    finally:
        consumer.close()


def end_offsets(client_config: Mapping[str, object], topic: str) -> dict[int, int]:
    """The high-water mark of each partition of ``topic``."""
    return {p: high for p, (_, high) in offset_ranges(client_config, topic).items()}


@dataclass
class TopicTap:
    """Streamed (not snapshot) change events seen on the raw topic from a starting point, with their lag
    from commit (``source.ts_ms``) to the broker's timestamp, counted per transaction (``source.txId``)."""

    events: int = 0
    tombstones: int = 0
    lags_ms: list[float] = field(default_factory=list)
    by_transaction: Counter = field(default_factory=Counter)

    def events_of(self, transactions: set[int]) -> int:
        """The events of these transactions (another writer's changes on the topic are not counted)."""
        return sum(n for tx, n in self.by_transaction.items() if tx in transactions)

    def percentile(self, q: float) -> float:
        if not self.lags_ms:
            return float("nan")
        ordered = sorted(self.lags_ms)
        return statistics.median(ordered) if q == 50 else ordered[round(q / 100 * (len(ordered) - 1))]


def tap(client_config: Mapping[str, object], topic: str, start: dict[int, int], tally: TopicTap,
        done: threading.Event, complete: Callable[[TopicTap], bool], timeout: float) -> None:
    """Read ``topic`` from ``start`` until ``complete(tally)`` once ``done`` is set (or ``timeout`` after it)."""
    consumer = Consumer({**client_config, "group.id": "olist-stream-tap", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(topic, p, o) for p, o in start.items()])
    deadline = None
    try:
        while True:
            if done.is_set():
                deadline = deadline or time.monotonic() + timeout
                if complete(tally) or time.monotonic() > deadline:
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
                    tally.by_transaction[source.get("txId")] += 1
                    tally.lags_ms.append(msg.timestamp()[1] - source["ts_ms"])
    finally:
        consumer.close()


def committed_offsets(client_config: Mapping[str, object], group: str, topic: str) -> dict[int, int]:
    """The offsets ``group`` has committed on each partition of ``topic`` (0 where it has none)."""
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(connection(client_config))
    partitions = end_offsets(client_config, topic)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    out = dict.fromkeys(partitions, 0)
    for future in admin.list_consumer_group_offsets([request], request_timeout=10).values():
        for tp in future.result(15).topic_partitions:
            out[tp.partition] = max(tp.offset, 0)
    return out


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def pending(client_config: Mapping[str, object], group: str, topics: Sequence[str], timeout: float = 30) -> int:
    """Committed records ``group`` has yet to process: read (read_committed) from its committed offsets to the end
    of each topic (transaction markers take offsets but hold no record, so offsets alone cannot tell)."""
    assignment = []
    for topic in topics:
        committed = committed_offsets(client_config, group, topic)
        assignment += [TopicPartition(topic, p, o) for p, o in committed.items()]
    consumer = Consumer({**client_config, "group.id": f"{group}-pending", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "enable.partition.eof": True})
    consumer.assign(assignment)
    left, count = {(tp.topic, tp.partition) for tp in assignment}, 0
    deadline = time.monotonic() + timeout
    try:
        while left and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    left.discard((msg.topic(), msg.partition()))
                continue
            count += 1
    finally:
        consumer.close()
    return count
