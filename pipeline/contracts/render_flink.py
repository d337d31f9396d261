"""Flink SQL DDL for the Kafka topics, generated from the contracts: the tables the Flink job (flink/) reads
and writes.

A CDC topic (an envelope whose ``before``/``after`` are rows of a table) gives one table: the raw envelopes,
append-only, with the commit time as ``event_time`` and the arrival time ``proc_time`` (the job keeps each key's
last streamed version in topic order with it, and finds late events by the newest commit time before each). A
topic with a primary key and ``cleanup.policy: compact`` is an ``upsert-kafka`` sink keyed by it; any other
topic is an append ``kafka`` sink keyed by ``kafkaKey``. Sinks write exactly once (Kafka transactions committed
on checkpoints).

What depends on the deployment is left as ``${name}`` placeholders (Python ``string.Template``) that the job
fills in: ``bootstrap_servers``, ``group_id``, ``startup_mode``, ``transactional_id_prefix`` and
``transaction_timeout_ms``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pipeline.contracts.registry import Column, ContractError, Dataset, Registry
from pipeline.contracts.row_rules import flink_valid_event, is_integer

HEADER = "-- Generated from contracts/ by `olist contracts generate`. Do not edit by hand.\n"
FLINK_DIR = Path("contracts/generated/flink")
PLACEHOLDERS = (
    "bootstrap_servers",
    "group_id",
    "startup_mode",
    "transactional_id_prefix",
    "transaction_timeout_ms",
)
SCALARS = {
    "string": "STRING",
    "text": "STRING",
    "smallint": "SMALLINT",
    "int": "INT",
    "integer": "INT",
    "int32": "INT",
    "bigint": "BIGINT",
    "int64": "BIGINT",
    "double": "DOUBLE",
    "float": "FLOAT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamptz": "TIMESTAMP_LTZ(6)",
}
# Extra fields are fine; a record that is not JSON, or has a field of the wrong type, must not stop the job: it is
# skipped (the format drops it, or a field is NULL and the contract's rules drop the row). The raw archive
# dead-letters it.
READ_JSON = {"fail-on-missing-field": "false", "ignore-parse-errors": "true"}
WRITE_JSON = {"encode.decimal-as-plain-number": "true"}  # 10.50, never 1.05E+1


def q(name: str) -> str:
    return f"`{name}`"


def flink_type(col: Column, registry: Registry, reading_rows: bool = False) -> str:
    """The Flink SQL type of one contract column (nullability aside). The rows of a CDC envelope read integers
    as DOUBLE: the job's validity rules (pipeline/contracts/row_rules.py) refuse a fractional value, where INT
    would truncate it."""
    if col.row_of:
        return row_type(registry.dataset(col.row_of).columns, registry, reading_rows=True)
    if col.children:
        return row_type(col.children, registry)
    physical = col.physical_type.lower().strip()
    if reading_rows and is_integer(col):
        return "DOUBLE"
    if digits := col.decimal_digits:
        return f"DECIMAL({digits[0]}, {digits[1]})"
    if m := re.fullmatch(r"timestamp\((\d)\)", physical):
        return f"TIMESTAMP({m.group(1)})"
    if physical == "timestamp":
        return "TIMESTAMP(6)"
    if re.fullmatch(r"(?:varchar|char)\(\d+\)", physical):
        return "STRING"
    if physical in SCALARS:
        return SCALARS[physical]
    raise ContractError(f"{col.name}: no Flink type for physicalType {col.physical_type!r}")


def row_type(columns: tuple[Column, ...], registry: Registry, reading_rows: bool = False) -> str:
    fields = [f"{q(c.name)} {flink_type(c, registry, reading_rows)}" for c in columns]  # a row may be partial
    return f"ROW<{', '.join(fields)}>"


def _column_line(col: Column, registry: Registry) -> str:
    return f"    {q(col.name)} {flink_type(col, registry)}{' NOT NULL' if col.required else ''}"


def _with(options: dict[str, str]) -> str:
    return "WITH (\n" + ",\n".join(f"    '{k}' = '{v}'" for k, v in options.items()) + "\n)"


def _format(prefix: str, options: dict[str, str]) -> dict[str, str]:
    return {f"{prefix}format": "json", **{f"{prefix}json.{k}": v for k, v in options.items()}}


def _source_options(ds: Dataset, role: str) -> dict[str, str]:
    # One consumer group per source table: the offsets each commits on checkpoints then measure its own lag.
    return {
        "connector": "kafka",
        "topic": ds.physical_name,
        "properties.bootstrap.servers": "${bootstrap_servers}",
        "properties.group.id": f"${{group_id}}-{role}",
        "properties.isolation.level": "read_committed",
        "scan.startup.mode": "${startup_mode}",
    }


def table_name(ds: Dataset, role: str | None = None) -> str:
    """The Flink table of a topic: its physical name without the schema prefix, plus the role of a CDC one."""
    base = ds.physical_name.rsplit(".", 1)[-1]
    return f"{base}_{role}" if role else base


def _event_time(ds: Dataset) -> str:
    field = ds.custom_property("eventTime")
    if not field:
        raise ContractError(f"{ds.name}: a CDC topic needs an eventTime custom property (e.g. source.ts_ms)")
    return str(field)


def events_ddl(ds: Dataset, registry: Registry) -> str:
    """The raw envelopes, append-only, with the commit time as event time and the arrival time (processing time:
    topic order on the one partition). No Flink watermark: nothing waits on one (the aggregates are updated, never
    closed), and the job's late-event report keeps its own in checkpointed state (flink/payments_windows.py)."""
    field = _event_time(ds)
    path = ".".join(q(p) for p in field.split("."))
    lines = [_column_line(c, registry) for c in ds.columns]
    # The commit time as a timestamp; a record without one (a broken contract) gets the epoch, never NULL.
    lines.append(f"    {q('event_time')} AS TO_TIMESTAMP_LTZ(COALESCE({path}, 0), 3)")
    lines.append(f"    {q('proc_time')} AS PROCTIME()")
    options = {**_source_options(ds, "events"), **_format("", READ_JSON)}
    return (
        f"-- {ds.physical_name} as raw envelopes (append-only), with commit time and arrival time.\n"
        f"CREATE TABLE {q(table_name(ds, 'events'))} (\n" + ",\n".join(lines) + f"\n) {_with(options)};\n"
    )


def sink_ddl(ds: Dataset, registry: Registry) -> str:
    """An exactly-once Kafka sink: upsert-kafka for a compacted topic with a primary key, else append."""
    upsert = bool(ds.primary_key) and ds.custom_property("kafkaConfig", {}).get("cleanup.policy") == "compact"
    lines = [_column_line(c, registry) for c in ds.columns]
    common = {
        "topic": ds.physical_name,
        "properties.bootstrap.servers": "${bootstrap_servers}",
        "properties.transaction.timeout.ms": "${transaction_timeout_ms}",
        "sink.delivery-guarantee": "exactly-once",
        "sink.transactional-id-prefix": f"${{transactional_id_prefix}}-{table_name(ds)}",
    }
    if upsert:
        lines.append(f"    PRIMARY KEY ({', '.join(q(k) for k in ds.primary_key)}) NOT ENFORCED")
        options = {
            "connector": "upsert-kafka",
            **common,
            **_format("key.", WRITE_JSON),
            **_format("value.", WRITE_JSON),
            "value.fields-include": "ALL",
            # keep the last change per key between flushes (and on every checkpoint): fewer records, and
            # no passing tombstone when an update moves a key's only payment out and back in
            "sink.buffer-flush.max-rows": "10000",
            "sink.buffer-flush.interval": "1 s",
        }
        what = f"upsert-kafka keyed by ({', '.join(ds.primary_key)}); a deleted key is written as a tombstone"
    else:
        key = [str(k) for k in ds.custom_property("kafkaKey", [])]
        options = {"connector": "kafka", **common}
        if key:
            options |= {**_format("key.", WRITE_JSON), "key.fields": ";".join(key)}
        options |= {**_format("value.", WRITE_JSON), "value.fields-include": "ALL"}
        keyed = ", ".join(key)
        what = f"append-only, keyed by ({keyed})" if key else "append-only"
    return (
        f"-- {ds.physical_name}: {what}.\n"
        f"CREATE TABLE {q(table_name(ds))} (\n" + ",\n".join(lines) + f"\n) {_with(options)};\n"
    )


def is_cdc(ds: Dataset) -> bool:
    return any(c.row_of for c in ds.columns)


def topic_sql(ds: Dataset, registry: Registry) -> str:
    head = f"{HEADER}-- {ds.physical_name}: contract {ds.contract_id} {ds.version}\n\n"
    if is_cdc(ds):
        return head + events_ddl(ds, registry)
    return head + sink_ddl(ds, registry)


def job_tables(registry: Registry) -> dict[str, str]:
    """The Flink table of each role the job reads or writes (``contracts/generated/flink/job.json``), and the
    condition under which a raw event counts: the job takes every name and rule from there, none of its own."""
    raw = registry.topic("raw")
    return {"source_topic": raw.physical_name, "events": table_name(raw, "events"),
            **{role: table_name(registry.topic(role)) for role in ("aggregated", "installments", "late")},
            "valid_event": flink_valid_event(raw, registry)}


def render_flink(registry: Registry) -> dict[Path, str]:
    """One SQL file per Kafka topic contract, and the job's table names by role."""
    out = {FLINK_DIR / f"{ds.physical_name}.sql": topic_sql(ds, registry) for ds in registry.topics()}
    out[FLINK_DIR / "job.json"] = json.dumps(job_tables(registry), indent=2) + "\n"
    return out
