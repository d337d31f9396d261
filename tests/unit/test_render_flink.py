"""Flink DDL generated from the topic contracts: what the job reads and writes, and how."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

from pipeline.contracts.render_flink import PLACEHOLDERS, render_flink


def test_one_file_per_topic_with_only_the_known_placeholders(registry):
    files = {p: text for p, text in render_flink(registry).items() if p.suffix == ".sql"}
    assert {p.name for p in files} == {f"{t.physical_name}.sql" for t in registry.topics()}
    for text in files.values():
        names = {m.group(1) for m in re.finditer(r"\$\{(\w+)\}", text)}
        assert names <= set(PLACEHOLDERS)
        string.Template(text).substitute({k: "x" for k in PLACEHOLDERS})  # no stray $


def test_the_cdc_topic_is_one_event_stream_with_commit_time_and_arrival_time(registry):
    text = render_flink(registry)[Path("contracts/generated/flink/olist.order_payments.sql")]
    (events,) = text.split("CREATE TABLE")[1:]
    assert "'format' = 'json'" in events, "the raw envelopes: the job keeps each key's last streamed version itself"
    assert "`after` ROW<`order_id` STRING, `payment_sequential` DOUBLE" in events, (
        "integers read as numbers: the contract's rules refuse 2.7 (INT would truncate it to 2)")
    assert "`payment_value` DECIMAL(12, 2)>" in events, "row types come from the table's contract"
    assert "`event_time` AS TO_TIMESTAMP_LTZ(COALESCE(`source`.`ts_ms`, 0), 3)" in events, "event time = commit time"
    assert "'json.ignore-parse-errors' = 'true'" in events, "a record that is not JSON never stops the job"
    assert "`proc_time` AS PROCTIME()" in events
    assert "WATERMARK" not in events, (
        "no Flink watermark: a mini-batch assigner would replace it; the job keeps its own")


def test_sinks_are_exactly_once_and_keyed_as_the_contracts_say(registry):
    files = render_flink(registry)
    agg = files[Path("contracts/generated/flink/olist_payments_aggregated_windowed.sql")]
    assert "'connector' = 'upsert-kafka'" in agg and "PRIMARY KEY (`window_start`, `window_end`, `payment_type`)" in agg
    assert "`payment_sum` DECIMAL(14, 2) NOT NULL" in agg and "`payment_avg` DOUBLE NOT NULL" in agg
    late = files[Path("contracts/generated/flink/olist_payments_late_events.sql")]
    assert "'connector' = 'kafka'" in late and "'key.fields' = 'order_id;payment_sequential'" in late
    for text in (agg, late):
        assert "'sink.delivery-guarantee' = 'exactly-once'" in text
        assert "'sink.transactional-id-prefix' = '${transactional_id_prefix}-" in text


def test_the_job_takes_every_table_name_from_the_contracts(registry):
    """job.json names each role's Flink table, and each is a table the generated DDL creates."""
    files = render_flink(registry)
    tables = json.loads(files[Path("contracts/generated/flink/job.json")])
    assert tables["source_topic"] == registry.topic("raw").physical_name
    created = {m.group(1) for text in files.values() for m in re.finditer(r"CREATE TABLE `([^`]+)`", text)}
    assert {v for k, v in tables.items() if k not in ("source_topic", "valid_event")} == created
    assert tables["aggregated"] == registry.topic("aggregated").physical_name


def test_the_jobs_validity_rules_come_from_the_row_contract(registry):
    """Every rule of order_payments' columns is in the job's condition: enum, range, pattern, integrality; the
    key's on the row an event names, the others on the after image unless a delete."""
    valid = json.loads(render_flink(registry)[Path("contracts/generated/flink/job.json")])["valid_event"]
    row = registry.dataset("order_payments")
    types = next(c for c in row.columns if c.name == "payment_type").enum
    assert f"`after`.`payment_type` IN ({', '.join(repr(t) for t in types)})" in valid
    assert "`after`.`payment_installments` >= 0 AND `after`.`payment_installments` <= 24" in valid
    assert "`after`.`payment_installments` = FLOOR(`after`.`payment_installments`)" in valid
    assert "REGEXP(COALESCE(`after`, `before`).`order_id`, '^[0-9a-f]{32}$')" in valid
    assert "`after`.`payment_value` >= 0" in valid and "`source`.`ts_ms` IS NOT NULL" in valid
    assert valid.startswith("`op` IN ('c', 'u', 'd', 'r')") and "(`op` = 'd' OR (" in valid
