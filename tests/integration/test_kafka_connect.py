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
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource

from emulation.connect import DEBEZIUM_POSTGRES, TOPICS, ConnectService
from emulation.jvm import MARKER, fetch
from emulation.kafka import KafkaService, TopicSpec
from emulation.resources import engine
from emulation.service import ServiceError
from pipeline.contracts import stream_names
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
    with running(engine("kafka", Settings(state_dir=state_dir))) as svc:
        yield svc


@pytest.fixture(scope="module")
def connect(kafka: KafkaService, state_dir: Path) -> Iterator[ConnectService]:
    with running(engine("connect", Settings(state_dir=state_dir))) as svc:
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
        engine("connect", settings).start()


def test_a_broker_that_cannot_start_says_why_with_its_log(state_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        svc = engine("kafka", Settings(state_dir=state_dir / "busy").replace(kafka={"port": port}))
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


# -- who may get in ------------------------------------------------------------------------------


def delivery_error(config: dict, topic: str, **extra: object) -> KafkaError | None:
    """Produce one record to ``topic`` with ``config``; the delivery error, or None when it was written."""
    errors: list[KafkaError | None] = []
    producer = Producer({**config, "message.timeout.ms": 10_000, **extra})
    producer.produce(topic, b"probe", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(15)
    return errors[0] if errors else KafkaError(KafkaError._MSG_TIMED_OUT)


def read_error(config: dict, topic: str, group: str) -> int | None:
    """Read ``topic`` in ``group`` for a while; the first error code (None when it could read to the end)."""
    consumer = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest", "enable.partition.eof": True})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error():
                code = msg.error().code()
                return None if code == KafkaError._PARTITION_EOF else code
        return KafkaError._TIMED_OUT
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def lane_topics(kafka):
    from pipeline import provision

    provision.ensure(kafka.settings, "kafka")  # the contract topics and every component's grants
    return stream_names()


def test_no_client_gets_in_without_its_password(kafka):
    """SASL/SCRAM only: a client without credentials, or with a wrong password, gets no metadata at all."""
    from confluent_kafka.admin import AdminClient

    anonymous = {"bootstrap.servers": kafka.bootstrap_servers(), "logger": kafka.client_config()["logger"]}
    wrong = {**kafka.client_config("sink"), "sasl.password": "not-the-password"}
    for config in (anonymous, wrong):
        with pytest.raises(KafkaException):
            AdminClient(config).list_topics(timeout=5)
    assert kafka.admin().list_topics(timeout=10).brokers, "the admin gets in"


def test_the_acls_are_exactly_the_grants_of_each_component(kafka, lane_topics):
    """Each component principal has the grants of pipeline/speed/access.py and not one more."""
    from confluent_kafka.admin import AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType
    from confluent_kafka.admin import ResourceType as R

    from pipeline.speed.access import kafka_grants

    admin = kafka.admin()
    anything = AclBindingFilter(R.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                AclPermissionType.ANY)
    present = {(b.principal, b.restype.name.lower(), b.name, b.resource_pattern_type.name.lower(), b.operation.name)
               for b in admin.describe_acls(anything, request_timeout=30).result()}
    wanted = {(g.user, g.resource, g.name, g.pattern, g.operation) for g in kafka_grants(kafka.settings)}
    assert present == wanted
    assert {p.split(":")[1] for p, *_ in present} == {"olist_connect", "olist_flink", "olist_sink", "olist_archive"}


def test_each_principal_is_refused_outside_its_grants(kafka, lane_topics):
    """The sink cannot write the raw topic; the archive cannot read a windowed topic nor use another group; Flink
    cannot write the raw topic nor open a transaction outside its prefix; no component can create a topic. Each
    can do its own part."""
    from confluent_kafka.admin import AdminClient, NewTopic

    names = lane_topics
    as_ = kafka.client_config
    denied = KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert delivery_error(as_("sink"), names.raw).code() == denied
    assert delivery_error(as_("sink"), names.dead_letter(names.aggregated)) is None
    assert delivery_error(as_("flink"), names.raw).code() == denied
    assert delivery_error(as_("archive"), names.aggregated).code() == denied
    assert delivery_error(as_("connect"), names.raw) is None
    assert read_error(as_("archive"), names.aggregated, "olist-raw-archive") == denied
    assert read_error(as_("archive"), names.raw, "someone-else") == KafkaError.GROUP_AUTHORIZATION_FAILED
    assert read_error(as_("archive"), names.raw, "olist-raw-archive") is None
    assert read_error(as_("sink"), names.raw, "olist-serving-cassandra") == denied
    tx = Producer({**as_("flink"), "transactional.id": "not-flinks-prefix"})
    with pytest.raises(KafkaException, match=r"(?i)authoriz"):
        tx.init_transactions(15)
    own = Producer({**as_("flink"), "transactional.id": f"{kafka.settings.flink.transactional_id_prefix}-probe"})
    own.init_transactions(15)
    for principal in ("connect", "flink", "sink", "archive"):
        admin = AdminClient(as_(principal))  # kept alive until its future is done
        result = admin.create_topics([NewTopic(f"made-by-{principal}", 1, 1)])
        with pytest.raises(KafkaException, match=r"(?i)authoriz"):
            result[f"made-by-{principal}"].result(15)


def test_connect_rest_asks_for_its_password(connect):
    """Basic authentication on the REST API: no credentials or wrong ones get 401; the worker's own get in."""
    import base64
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    user, _ = connect.rest_credentials()
    for headers in ({}, {"Authorization": "Basic " + base64.b64encode(f"{user}:wrong".encode()).decode()}):
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(urllib.request.Request(connect.url + "/connectors", headers=headers), timeout=10)
        assert err.value.code == 401
    assert connect._call("GET", "/connectors")[0] == 200


def test_a_storage_formatted_before_authentication_is_refused_with_what_to_do(tmp_path):
    """Old state (formatted without SCRAM users, so no one could log in) is refused before the JVM starts,
    in one line that names the folder and the fix; the storage is left as it was."""
    svc = engine("kafka", Settings(state_dir=tmp_path))
    svc.data_dir.mkdir(parents=True)
    (svc.data_dir / "meta.properties").write_text("version=1\n")
    with pytest.raises(ServiceError) as err:
        svc.command(fetch(svc.jvm))
    first = str(err.value).splitlines()[0]
    assert "formatted before authentication" in first and str(svc.data_dir) in first and "--purge" in first
    assert (svc.data_dir / "meta.properties").read_text() == "version=1\n"
