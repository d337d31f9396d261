"""CDC wiring, all of it from the contracts and the connector's JSON config kept in the repo:
Kafka topics (partitions, cleanup, retention, dead-letter), a least-privilege replication user, the
publication for exactly the captured tables, the Debezium connector, and a teardown that leaves no
replication slot holding WAL."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg

from emulation.connect import load_connector_config, secrets_dir
from emulation.postgres import PostgresService
from emulation.resources import engine
from emulation.service import ServiceError, write_private
from pipeline import provision
from pipeline.contracts import Registry, load_registry
from pipeline.provision.kafka import TopicSpec, retention_limit, topic_specs
from pipeline.provision.postgres import CDC_USER, CONNECTOR_CONFIG
from pipeline.provision.postgres import captured_tables as _captured
from pipeline.settings import Settings

CONNECTOR = "olist-order-payments"
__all__ = ["CDC_USER", "CONNECTOR_CONFIG", "TopicSpec", "topic_specs"]  # re-exported: the CDC side of the contracts


def captured_tables(registry: Registry | None = None) -> list[str]:
    """The tables whose rows a CDC topic carries (its envelope's ``rowOf``)."""
    return _captured(registry or load_registry())


def check_retention(kafka) -> None:
    """Fail, naming the setting, when the broker would drop records of the raw topic sooner than its contract keeps
    them: the archive and every recompute read it from the earliest offset."""
    raw = load_registry().topic("raw")
    wanted = dict(raw.custom_property("kafkaConfig", {}))
    actual = kafka.topic_config(raw.physical_name)
    for key in ("retention.ms", "retention.bytes"):
        if key in wanted and retention_limit(actual.get(key)) < retention_limit(wanted[key]):
            raise ServiceError(f"cdc: topic {raw.physical_name} has {key}={actual.get(key)}, but its contract keeps "
                               f"{key}={wanted[key]}: the broker would truncate what the archive and the recompute "
                               f"read; alter the topic (kafka-configs --alter --add-config {key}={wanted[key]})")


def cdc_password(settings: Settings) -> str:
    """The CDC role's password: the setting, else generated at first use and kept in the state folder (0600)."""
    return engine("postgres", settings).cdc_password()


def password_reference(settings: Settings) -> str:
    """What the connector config holds instead of the password: a reference the Connect worker resolves from a
    properties file (0600) in its secrets folder when the task starts."""
    path = secrets_dir(settings) / "cdc.properties"
    write_private(path, f"password={cdc_password(settings)}\n")
    return f"${{file:{path}:password}}"


def prepare_postgres(pg: PostgresService, settings: Settings) -> None:
    """The CDC role (made by the superuser: REPLICATION needs one), then through the provisioning layer the tables,
    full row images, the role's SELECT on the captured tables only and a publication limited to them."""
    from pipeline.provision.postgres import connector, converge

    pg.ensure_role(CDC_USER, cdc_password(settings), "replication nosuperuser nocreatedb nocreaterole")
    converge(connector(pg.conninfo()), settings.pg_schema, cdc=True)


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

    pg, connect = engine("postgres", settings), engine("connect", settings)
    provision.ensure(settings, "kafka")  # the topics and the grants
    check_retention(engine("kafka", settings))
    prepare_postgres(pg, settings)
    provision.ensure(settings, "connect")  # a registered connector whose config is behind says so
    connect.register(CONNECTOR, connector_config(pg, settings))
    return connect.wait_running(CONNECTOR, timeout=timeout)


def stop(settings: Settings, timeout: float = 20) -> list[str]:
    """Reset CDC: stop the connector, forget its offsets, remove it, then drop its replication slot once
    released (so no slot holds WAL). Offsets and slot go together: the next `cdc up` snapshots afresh (snapshot
    reads are not counted as live payments, so no window changes). `olist down` keeps both, and resumes."""
    pg, connect = engine("postgres", settings), engine("connect", settings)
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
    connect = engine("connect", settings)
    return connect.connector_status(CONNECTOR) if connect.available() else None
