"""Kafka (KRaft, one node) and Kafka Connect on real JVMs: topics, produce/consume, transactions, restart,
the Debezium plugin, and failures that say why."""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource

from emulation.connect import DEBEZIUM_POSTGRES, TOPICS, ConnectService
from emulation.jvm import MARKER, fetch
from emulation.kafka import KafkaService, TopicSpec
from emulation.service import ServiceError
from pipeline.settings import PROJECT_ROOT, Settings
from tests.conftest import running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def state_dir() -> Iterator[Path]:
    path = PROJECT_ROOT / ".state" / f"pytest-kafka-{os.getpid()}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def kafka(state_dir: Path) -> Iterator[KafkaService]:
    with running(KafkaService(Settings(state_dir=state_dir))) as svc:
        yield svc


@pytest.fixture(scope="module")
def connect(kafka: KafkaService, state_dir: Path) -> Iterator[ConnectService]:
    with running(ConnectService(Settings(state_dir=state_dir))) as svc:
        yield svc


def consume(consumer: Consumer, count: int, timeout: float = 20.0, until_eof: bool = False) -> list[str]:
    """Values of the next ``count`` messages (fewer at the partition's end when ``until_eof``, or on timeout)."""
    values: list[str] = []
    deadline = time.monotonic() + timeout
    while len(values) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                raise AssertionError(msg.error())
            if until_eof:
                break
            continue
        values.append(msg.value().decode())
    return values


def listening_addresses(pid: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process(pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


def test_fetch_is_cached_after_the_first_run(kafka):
    started = time.monotonic()
    artifacts = fetch()
    assert time.monotonic() - started < 1.0, "a warm fetch must not run Maven"
    assert (artifacts.root / MARKER).exists()
    assert any(artifacts.lib("kafka").glob("kafka_2.13-4.*.jar"))
    assert any((artifacts.plugin_path / "debezium-connector-postgres").glob("debezium-connector-postgres-*.jar"))


def test_broker_answers_on_loopback_only_and_creates_no_topic_by_itself(kafka):
    st = kafka.status()
    assert st.running and st.healthy
    assert st.endpoint.host == "127.0.0.1" and kafka.bootstrap_servers() == st.endpoint.address
    assert listening_addresses(st.pid) == {"127.0.0.1"}
    md = kafka.admin().list_topics(topic="never-created", timeout=10)
    assert md.topics["never-created"].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert "never-created" not in kafka.admin().list_topics(timeout=10).topics


def test_create_topics_is_idempotent_and_applies_partitions_and_config(kafka):
    spec = TopicSpec("t.compacted", partitions=3, config={"cleanup.policy": "compact"})
    assert sorted(kafka.create_topics([spec, {"name": "t.plain"}])) == ["t.compacted", "t.plain"]
    assert kafka.create_topics([spec, {"name": "t.plain"}]) == []
    md = kafka.admin().list_topics(timeout=10)
    assert len(md.topics["t.compacted"].partitions) == 3
    assert all(len(p.replicas) == 1 for p in md.topics["t.compacted"].partitions.values())
    resource = ConfigResource(ConfigResource.Type.TOPIC, "t.compacted")
    admin = kafka.admin()
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["cleanup.policy"].value == "compact"


def test_produce_then_consume_in_a_group(kafka):
    kafka.create_topics([TopicSpec("t.roundtrip")])
    producer = Producer(kafka.client_config(**{"acks": "all", "enable.idempotence": True}))
    for i in range(5):
        producer.produce("t.roundtrip", key=str(i), value=f"message-{i}")
    assert producer.flush(15) == 0
    consumer = Consumer(kafka.client_config(**{"group.id": f"g-{uuid.uuid4().hex[:8]}",
                                               "auto.offset.reset": "earliest"}))
    try:
        consumer.subscribe(["t.roundtrip"])
        assert consume(consumer, 5) == [f"message-{i}" for i in range(5)]
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition("t.roundtrip", 0)], timeout=10)
        assert committed[0].offset == 5
    finally:
        consumer.close()


def test_transactions_commit_and_abort_on_one_node(kafka):
    topic = "t.transactions"
    kafka.create_topics([TopicSpec(topic)])
    producer = Producer(kafka.client_config(**{"transactional.id": f"tx-{uuid.uuid4().hex[:8]}"}))
    producer.init_transactions(30)
    for value, commit in (("committed-1", True), ("aborted", False), ("committed-2", True)):
        producer.begin_transaction()
        producer.produce(topic, value=value)
        producer.flush(10)
        (producer.commit_transaction if commit else producer.abort_transaction)(30)

    def read(isolation: str, count: int) -> list[str]:
        consumer = Consumer(kafka.client_config(**{"group.id": f"r-{uuid.uuid4().hex[:8]}",
                                                   "isolation.level": isolation, "enable.auto.commit": False,
                                                   "enable.partition.eof": True}))
        try:
            consumer.assign([TopicPartition(topic, 0, 0)])
            return consume(consumer, count, timeout=10, until_eof=True)
        finally:
            consumer.close()

    assert read("read_committed", 3) == ["committed-1", "committed-2"]
    assert read("read_uncommitted", 3) == ["committed-1", "aborted", "committed-2"]


def test_stop_then_start_keeps_topics_cluster_id_and_port(kafka):
    kafka.create_topics([TopicSpec("t.kept", partitions=2)])
    before = kafka.endpoint()
    kafka.stop()
    assert kafka.pid() is None and not kafka.status().running
    kafka.stop()  # stopping a stopped broker is a no-op
    kafka.start()
    assert kafka.endpoint() == before
    md = kafka.admin().list_topics(timeout=10)
    assert "t.kept" in md.topics and len(md.topics["t.kept"].partitions) == 2
    assert "Kafka Server started" in kafka.logs(400)


def test_connect_worker_lists_debezium_and_keeps_its_topics_in_kafka(connect, kafka):
    st = connect.status()
    assert st.running and st.healthy and st.endpoint.host == "127.0.0.1"
    assert listening_addresses(st.pid) == {"127.0.0.1"}
    assert DEBEZIUM_POSTGRES in {p["class"] for p in connect.plugins()}
    md = kafka.admin().list_topics(timeout=10)
    for topic in TOPICS.values():
        assert all(len(p.replicas) == 1 for p in md.topics[topic].partitions.values())
    assert connect.connectors() == []
    assert connect.connector_status("missing") is None
    connect.delete("missing")  # deleting a missing connector is a no-op


def test_connect_rejects_an_invalid_connector_with_connects_own_reason(connect):
    config = {"connector.class": DEBEZIUM_POSTGRES, "database.hostname": "127.0.0.1", "database.port": 1,
              "database.user": "nobody", "database.password": "x", "database.dbname": "none",
              "topic.prefix": "bad"}
    with pytest.raises(ServiceError, match=r"connect: connector 'bad' config is invalid: database.hostname: .*refused"):
        connect.register("bad", config)
    assert connect.connector_status("bad") is None


def test_connect_without_kafka_says_so(tmp_path):
    settings = Settings(state_dir=tmp_path)
    with pytest.raises(ServiceError, match="Kafka is not answering"):
        ConnectService(settings).start()


def test_a_broker_that_cannot_start_says_why_with_its_log(state_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        svc = KafkaService(Settings(state_dir=state_dir / "busy").replace(kafka={"port": port}))
        try:
            with pytest.raises(ServiceError) as err:
                svc.start()
            text = str(err.value)
            assert text.startswith("kafka: ")
            assert "Address already in use" in text.splitlines()[0], "the first line names the cause"
            assert "last lines of" in text and "Socket server failed to bind" in text
            assert svc.pid() is None
        finally:
            svc.destroy()


def test_cdc_refuses_a_raw_topic_the_broker_would_truncate_sooner_than_its_contract(kafka):
    """The raw topic is the master dataset: kept 7 days with no byte cap by its contract; a topic kept less fails
    `olist cdc up` with the setting named."""
    from pipeline.contracts import stream_names
    from pipeline.speed.cdc import topic_specs
    from pipeline.speed.cdc.connector import check_retention

    raw = stream_names().raw
    kafka.delete_topics([raw])
    kafka.create_topics([TopicSpec(raw, 1, {"retention.ms": "3600000"})])
    try:
        with pytest.raises(ServiceError, match=r"retention.ms=3600000, but its contract keeps retention.ms=604800000"):
            check_retention(kafka)
    finally:
        kafka.delete_topics([raw])
    kafka.create_topics([s for s in topic_specs() if s.name == raw])
    check_retention(kafka)  # as the contract creates it: fine
    kafka.delete_topics([raw])
