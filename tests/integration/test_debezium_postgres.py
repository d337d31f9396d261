"""Debezium on Kafka Connect streams olist.order_payments from PostgreSQL (pgoutput) into the Kafka topic of the
same name: envelopes in commit order, tombstones after deletes, and no change lost while the worker is down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from emulation.connect import TOPICS, ConnectService
from emulation.kafka import KafkaService
from emulation.postgres import PostgresService, find_bin_dir
from emulation.resources import engine
from pipeline import platform
from pipeline.contracts import stream_names
from pipeline.contracts.event_validation import event_errors
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.speed import cdc
from pipeline.speed.cdc.connector import cdc_password
from tests.conftest import running
from tests.kafka_helpers import read_topic

pytestmark = pytest.mark.integration

TOPIC = stream_names().raw
A, B, C = "a" * 32, "b" * 32, "c" * 32


@pytest.fixture(scope="module")
def settings() -> Iterator[Settings]:
    state = PROJECT_ROOT / ".state" / f"pytest-debezium-{os.getpid()}"
    yield Settings(state_dir=state)
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def pg(settings: Settings) -> Iterator[PostgresService]:
    with running(engine("postgres", settings)) as svc:
        yield svc


@pytest.fixture(scope="module")
def kafka(settings: Settings) -> Iterator[KafkaService]:
    with running(engine("kafka", settings)) as svc:
        yield svc


@pytest.fixture(scope="module")
def connect(settings: Settings, kafka: KafkaService) -> Iterator[ConnectService]:
    with running(engine("connect", settings)) as svc:
        yield svc


@pytest.fixture(scope="module")
def connector(settings: Settings, pg: PostgresService, kafka: KafkaService, connect: ConnectService) -> Iterator[str]:
    """`pipeline.speed.cdc`: topics from the contracts, the least-privileged user, the publication, the connector."""
    cdc.start(settings)
    cdc.start(settings)  # idempotent: registering again changes nothing
    try:
        wait_slot_active(pg, cdc.connector_config(pg, settings)["slot.name"])
        yield cdc.CONNECTOR
    finally:
        cdc.stop(settings)


def wait_slot_active(pg: PostgresService, slot: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("select active from pg_replication_slots where slot_name = %s", (slot,)).fetchone()
            if row and row[0]:
                return
            time.sleep(0.2)
    raise AssertionError(f"replication slot {slot} never became active")


class TopicReader:
    """Reads the topic from the start, one consumer for the module, keys and values decoded from JSON."""

    def __init__(self, kafka: KafkaService) -> None:
        self.consumer = Consumer(kafka.client_config(**{"group.id": "pytest-debezium", "enable.auto.commit": False}))
        self.consumer.assign([TopicPartition(TOPIC, 0, 0)])

    def read(self, count: int, timeout: float = 60) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            msg = self.consumer.poll(0.5)
            if msg is None or (msg.error() and msg.error().code() == KafkaError._PARTITION_EOF):
                continue
            assert not msg.error(), msg.error()
            value = msg.value()
            out.append((json.loads(msg.key()), None if value is None else json.loads(value)))
        assert len(out) == count, f"expected {count} events on {TOPIC}, got {len(out)}: {out}"
        return out


@pytest.fixture(scope="module")
def reader(kafka: KafkaService, connector: str) -> Iterator[TopicReader]:
    r = TopicReader(kafka)
    yield r
    r.consumer.close()


def execute(pg: PostgresService, *statements: str) -> None:
    """Run ``statements`` in one transaction."""
    with psycopg.connect(pg.conninfo()) as conn:
        for sql in statements:
            conn.execute(sql)


def test_inserts_updates_and_deletes_arrive_in_commit_order_with_a_tombstone(pg, reader):
    execute(pg,
            f"insert into olist.order_payments values ('{A}', 1, 'credit_card', 3, 120.50, now())",
            f"insert into olist.order_payments values ('{B}', 1, 'boleto', 1, 35.00, now())")
    execute(pg, f"update olist.order_payments set payment_value = 99.90 where order_id = '{A}'")
    execute(pg, f"delete from olist.order_payments where order_id = '{B}'")

    events = reader.read(5)
    keys = [k for k, _ in events]
    assert keys == [{"order_id": o, "payment_sequential": 1} for o in (A, B, A, B, B)]
    values = [v for _, v in events]
    assert [v and v["op"] for v in values] == ["c", "c", "u", "d", None], "the delete is followed by a tombstone"
    insert_a, insert_b, update_a, delete_b, _ = values
    assert insert_a["before"] is None and insert_b["after"]["order_id"] == B
    assert {k: insert_a["after"][k] for k in ("payment_type", "payment_installments", "payment_value")} == {
        "payment_type": "credit_card", "payment_installments": 3, "payment_value": 120.5}
    assert update_a["before"]["payment_value"] == 120.5 and update_a["after"]["payment_value"] == 99.9
    for v in values[:4]:
        assert event_errors(TOPIC, v) == [], "every event satisfies the topic's contract"
    assert delete_b["before"]["payment_type"] == "boleto" and delete_b["after"] is None
    for v in values[:4]:
        assert (v["source"]["schema"], v["source"]["table"]) == ("olist", "order_payments")
        assert isinstance(v["ts_ms"], int) and isinstance(v["source"]["ts_ms"], int)
    lsns = [v["source"]["lsn"] for v in values[:4]]
    assert lsns == sorted(lsns) and len(set(lsns)) == 4, f"LSNs must follow commit order: {lsns}"
    txids = [v["source"]["txId"] for v in values[:4]]
    assert txids[0] == txids[1] < txids[2] < txids[3], "both inserts share one transaction"


def test_changes_made_while_connect_is_down_arrive_after_its_restart(pg, connect, connector, reader):
    connect.stop()
    assert connect.pid() is None
    execute(pg, f"insert into olist.order_payments values ('{C}', 2, 'voucher', 1, 10.00, now())")
    connect.start()
    connect.wait_running(connector, timeout=90)
    [(key, value)] = reader.read(1)
    assert key == {"order_id": C, "payment_sequential": 2}
    assert value["op"] == "c" and value["after"]["payment_type"] == "voucher"


def test_the_replication_user_can_read_only_the_captured_table(pg, settings, connector):
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        grants = conn.execute(
            "select table_name, privilege_type from information_schema.role_table_grants where grantee = %s",
            (cdc.CDC_USER,)).fetchall()
        published = conn.execute("select tablename from pg_publication_tables where pubname = %s",
                                 (cdc.connector_config(pg, settings)["publication.name"],)).fetchall()
        replication = conn.execute("select rolreplication, rolsuper from pg_roles where rolname = %s",
                                   (cdc.CDC_USER,)).fetchone()
    assert grants == [("order_payments", "SELECT")]
    assert published == [("order_payments",)]
    assert replication == (True, False)


# -- who may get in ------------------------------------------------------------------------------


def test_the_connector_config_holds_a_reference_not_the_password(settings, kafka, connect, connector):
    """The password is resolved by the worker (a file config provider) when the task starts: the REST API and
    the config topic only ever see the reference, and the connector streams all the same (the fixture)."""
    password = cdc_password(settings)
    code, config = connect._call("GET", f"/connectors/{connector}/config")
    assert code == 200 and config["database.password"].startswith("${file:"), config["database.password"]
    assert password not in json.dumps(config)
    stored = read_topic(kafka, TOPICS["config"], isolation="read_uncommitted")
    assert stored and not [r.offset for r in stored if password.encode() in (r.value or b"")]
    secret_file = Path(config["database.password"].split(":")[1])
    assert secret_file.stat().st_mode & 0o077 == 0, "the secrets file is the owner's alone"


def test_the_cdc_role_decodes_its_publication_but_cannot_copy_the_cluster(pg, settings, connector, tmp_path):
    """Logical decoding works (the fixture streams); a physical base backup of the whole cluster is refused by
    pg_hba, and so is a connection without a password."""
    ep = pg.endpoint()
    backup = subprocess.run([str(find_bin_dir(settings.pg_bin_dir) / "pg_basebackup"), "-h", ep.host, "-p",
                             str(ep.port), "-U", cdc.CDC_USER, "-D", str(tmp_path / "copy"), "-X", "none", "-w"],
                            env={**os.environ, "PGPASSWORD": cdc_password(settings)}, capture_output=True,
                            text=True, timeout=60)
    assert backup.returncode != 0 and "pg_hba.conf rejects replication connection" in backup.stderr, backup.stderr
    assert not (tmp_path / "copy" / "base").exists()
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host=ep.host, port=ep.port, user=cdc.CDC_USER, dbname=ep.extra["dbname"], password="",
                        connect_timeout=5)


def test_no_generated_secret_is_in_any_process_arguments_or_log(settings, pg, kafka, connect, connector):
    """PostgreSQL's three roles', the Kafka principals' and Connect's REST password: in no engine's command line
    (its whole process tree) and in no log under the state folder."""
    found = [secret for name, secret in platform.secrets(settings).items()
             if name.startswith(("postgres", "kafka", "connect"))]
    assert len(found) == 10
    for svc in (pg, kafka, connect):
        root = psutil.Process(svc.pid())
        for proc in [root, *root.children(recursive=True)]:
            args = " ".join(proc.cmdline())
            assert not [s for s in found if s in args], f"{svc.name}: a secret in the arguments of pid {proc.pid}"
    logs = [p for p in settings.state_dir.rglob("*") if p.is_file() and (".log" in p.name or p.parent.name == "log")]
    assert logs, "the engines write logs under the state folder"
    leaked = [str(p) for p in logs for s in found if s.encode() in p.read_bytes()]
    assert not leaked, f"secrets in {leaked}"


# -- last: it removes the connector -------------------------------------------------------------


def test_resetting_cdc_drops_slot_and_offsets_together(pg, settings, connect, connector, reader):
    """`olist cdc down` stops the connector, forgets its offsets, removes it and drops its slot (no slot holds
    WAL); registered again, it snapshots the table afresh instead of resuming from offsets whose slot is gone."""
    slot = cdc.connector_config(pg, settings)["slot.name"]
    assert connect.offsets(connector), "a running connector has committed offsets"
    assert cdc.stop(settings) == [slot]
    assert connect.connector_status(connector) is None
    with psycopg.connect(pg.conninfo()) as conn:
        assert conn.execute("select count(*) from pg_replication_slots where slot_name = %s",
                            (slot,)).fetchone() == (0,)
        rows = conn.execute("select count(*) from olist.order_payments").fetchone()[0]
    cdc.start(settings)
    try:
        snapshot = reader.read(rows, timeout=90)
        assert {v["op"] for _, v in snapshot} == {"r"}, "a fresh snapshot, not a resume"
    finally:
        cdc.stop(settings)
