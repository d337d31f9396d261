"""CDC wiring, all of it from the contracts and the connector's JSON config kept in the repo:
Kafka topics (partitions, cleanup, retention, dead-letter), a least-privilege replication user, the
publication for exactly the captured tables, the Debezium connector, and a teardown that leaves no
replication slot holding WAL."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
from psycopg import sql

from emulation.connect import ConnectService, load_connector_config, secrets_dir
from emulation.kafka import KafkaService, TopicSpec
from emulation.postgres import PostgresService
from emulation.service import ServiceError, write_private
from pipeline.batch.load import apply_schema
from pipeline.contracts import Registry, load_registry
from pipeline.settings import Settings

CONNECTOR_CONFIG = Path(__file__).with_name("debezium-order-payments.json")
CONNECTOR = "olist-order-payments"
CDC_USER = "olist_cdc"


def topic_specs(registry: Registry | None = None) -> list[TopicSpec]:
    """Every Kafka topic the contracts describe, with its dead-letter topic."""
    registry = registry or load_registry()
    specs = []
    for ds in registry.topics():
        partitions = int(ds.custom_property("kafkaPartitions", 1))
        specs.append(TopicSpec(ds.physical_name, partitions, dict(ds.custom_property("kafkaConfig", {}))))
        if dlq := ds.custom_property("deadLetterTopic"):
            specs.append(TopicSpec(dlq, 1, {"cleanup.policy": "delete"}))
    return specs


def _limit(value: str | None) -> float:
    """A retention setting as a number; -1 (no limit) as infinity."""
    number = float(value) if value not in (None, "") else -1
    return float("inf") if number < 0 else number


def check_retention(kafka: KafkaService) -> None:
    """Fail, naming the setting, when the broker would drop records of the raw topic sooner than its contract keeps
    them: the archive and every recompute read it from the earliest offset."""
    raw = load_registry().topic("raw")
    wanted = dict(raw.custom_property("kafkaConfig", {}))
    actual = kafka.topic_config(raw.physical_name)
    for key in ("retention.ms", "retention.bytes"):
        if key in wanted and _limit(actual.get(key)) < _limit(wanted[key]):
            raise ServiceError(f"cdc: topic {raw.physical_name} has {key}={actual.get(key)}, but its contract keeps "
                               f"{key}={wanted[key]}: the broker would truncate what the archive and the recompute "
                               f"read; alter the topic (kafka-configs --alter --add-config {key}={wanted[key]})")


def captured_tables(registry: Registry | None = None) -> list[str]:
    """The tables whose rows a CDC topic carries (its envelope's ``rowOf``)."""
    registry = registry or load_registry()
    return sorted({c.row_of for ds in registry.topics() for c in ds.columns if c.row_of})


def cdc_password(settings: Settings) -> str:
    """The CDC role's password: the setting, else generated at first use and kept in the state folder (0600)."""
    return PostgresService(settings).cdc_password()


def password_reference(settings: Settings) -> str:
    """What the connector config holds instead of the password: a reference the Connect worker resolves from a
    properties file (0600) in its secrets folder when the task starts."""
    path = secrets_dir(settings) / "cdc.properties"
    write_private(path, f"password={cdc_password(settings)}\n")
    return f"${{file:{path}:password}}"


def prepare_postgres(pg: PostgresService, settings: Settings, publication: str) -> None:
    """Tables from the contracts, full row images for updates and deletes, a user with REPLICATION and
    SELECT on the captured tables only, and a publication limited to them. The role is made by the superuser
    (REPLICATION needs one); the rest by the pipeline's role, which owns the tables."""
    schema = settings.pg_schema
    tables = captured_tables()
    user = sql.Identifier(CDC_USER)
    pg.ensure_role(CDC_USER, cdc_password(settings), "replication nosuperuser nocreatedb nocreaterole")
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        apply_schema(conn, load_registry(), schema)
        conn.execute(sql.SQL("grant usage on schema {} to {}").format(sql.Identifier(schema), user))
        names = sql.SQL(", ").join(sql.Identifier(schema, t) for t in tables)
        conn.execute(sql.SQL("grant select on {} to {}").format(names, user))
        for table in tables:
            conn.execute(sql.SQL("alter table {} replica identity full").format(sql.Identifier(schema, table)))
        if not conn.execute("select 1 from pg_publication where pubname = %s", (publication,)).fetchone():
            conn.execute(sql.SQL("create publication {} for table {}").format(sql.Identifier(publication), names))


def connector_config(pg: PostgresService, settings: Settings, path: Path = CONNECTOR_CONFIG) -> dict:
    ep = pg.endpoint()
    assert ep is not None
    config = load_connector_config(path, host=ep.host, port=ep.port, user=CDC_USER,
                                   password=password_reference(settings), dbname=ep.extra["dbname"],
                                   schema=settings.pg_schema)
    options = json.loads(ep.extra.get("options", "{}"))  # a deployment's DSN: its TLS options hold for CDC too
    config |= {f"database.{k}": v for k, v in options.items() if k in ("sslmode", "sslrootcert")}
    if settings.connect.exactly_once_source:  # the workers commit its records and offsets in one transaction
        config["exactly.once.support"] = "required"
    return config


def start(settings: Settings, timeout: float = 90) -> dict:
    """Topics, PostgreSQL side, connector registered and RUNNING; returns the connector's status."""
    pg, kafka, connect = PostgresService(settings), KafkaService(settings), ConnectService(settings)
    kafka.create_topics(topic_specs())
    check_retention(kafka)
    config = connector_config(pg, settings)
    prepare_postgres(pg, settings, config["publication.name"])
    connect.register(CONNECTOR, config)
    return connect.wait_running(CONNECTOR, timeout=timeout)


def stop(settings: Settings, timeout: float = 20) -> list[str]:
    """Reset CDC: stop the connector, forget its offsets, remove it, then drop its replication slot once
    released (so no slot holds WAL). Offsets and slot go together: the next `cdc up` snapshots afresh (snapshot
    reads are not counted as live payments, so no window changes). `olist down` keeps both, and resumes."""
    pg, connect = PostgresService(settings), ConnectService(settings)
    dropped = []
    slot = connector_config(pg, settings)["slot.name"] if pg.endpoint() else None
    if connect.available():
        connect.stop_connector(CONNECTOR)
        connect.reset_offsets(CONNECTOR)
        connect.delete(CONNECTOR)
        gone_by = time.monotonic() + 3 * timeout  # the status topic lags the delete; wait for the task to stop
        while connect.connector_status(CONNECTOR) is not None and time.monotonic() < gone_by:
            time.sleep(0.3)
    if slot is None or not pg.available():
        return dropped
    deadline, terminated = time.monotonic() + timeout, False
    with psycopg.connect(pg.admin_conninfo(), autocommit=True) as conn:  # the slot is the CDC role's
        while True:
            row = conn.execute("select active, active_pid from pg_replication_slots where slot_name = %s",
                               (slot,)).fetchone()
            if row is None:
                break
            active, pid = row
            if not active:
                conn.execute("select pg_drop_replication_slot(%s)", (slot,))
                dropped.append(slot)
                break
            if time.monotonic() >= deadline:
                if terminated:
                    raise ServiceError(f"cdc: replication slot {slot} is still in use by pid {pid}")
                # The connector is gone but its walsender lingers (a task still shutting down): end it.
                conn.execute("select pg_terminate_backend(%s)", (pid,))
                deadline, terminated = time.monotonic() + timeout, True
            time.sleep(0.3)
    return dropped


def status(settings: Settings) -> dict | None:
    connect = ConnectService(settings)
    return connect.connector_status(CONNECTOR) if connect.available() else None
