"""The Cassandra serving tables generated from the windowed topic contracts, and how the sink types a record."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from decimal import Decimal

import pytest

from emulation.cassandra import split_statements
from pipeline.contracts import stream_names
from pipeline.contracts.registry import Column, ContractError
from pipeline.contracts.render_cassandra import (
    UPDATED_COLUMN,
    cassandra_table,
    cql_type,
    render_cassandra,
    serving_tables,
)
from pipeline.speed.sink import RecordError, decode, decode_key, parse_timestamp

NAMES = stream_names()
AGGREGATED, INSTALLMENTS, LATE = NAMES.served
KEYSPACE = NAMES.keyspace

NOW = dt.datetime(2026, 11, 27, 21, 0, 30, tzinfo=dt.UTC)
GOOD = {"window_start": "2026-11-27 23:59:50.000", "window_end": "2026-11-28 00:00:00.000",
        "payment_type": "boleto", "payment_count": 3, "payment_sum": 30.5, "payment_avg": 10.1666,
        "payment_min": 5.0, "payment_max": 15.5}


@pytest.mark.parametrize(("physical", "logical", "expected"), [
    ("timestamp(3)", "timestamp", "timestamp"), ("decimal(14,2)", "number", "decimal"), ("double", "number", "double"),
    ("bigint", "integer", "bigint"), ("int", "integer", "int"), ("integer", "integer", "int"),
    ("string", "string", "text"), ("varchar(32)", "string", "text"), ("date", "date", "date"),
    ("timestamptz", "timestamp", "timestamp"),
])
def test_contract_types_map_to_cql(physical, logical, expected):
    assert cql_type(Column("c", logical, physical, True)) == expected


def test_both_windowed_topics_get_a_table_holding_every_contract_field(registry):
    tables = {t.name: t for t in serving_tables(registry)}
    assert set(tables) == {AGGREGATED, INSTALLMENTS, LATE}
    late = tables.pop(LATE)
    assert late.partition_key == ("window_date",) and late.clustering[0] == ("commit_time", "DESC")
    assert late.column_names == ["window_date", *registry.dataset(LATE).column_names, UPDATED_COLUMN]
    for name, table in tables.items():
        ds = registry.dataset(name)
        assert table.keyspace == KEYSPACE
        assert table.column_names == ["window_date", *ds.column_names, UPDATED_COLUMN]
        assert table.partition_key == ("window_date", "payment_type")
        assert set(ds.primary_key) <= set(table.primary_key), "the contract's key identifies a row"
        assert table.clustering[0] == ("window_end", "DESC")
    assert tables[INSTALLMENTS].clustering[-1] == ("payment_installments", "ASC")
    types = dict((c.name, c.type) for c in tables[AGGREGATED].columns)
    assert types == {"window_date": "date", "window_start": "timestamp", "window_end": "timestamp",
                     "payment_type": "text", "payment_count": "bigint", "payment_sum": "decimal",
                     "payment_avg": "double", "payment_min": "decimal", "payment_max": "decimal",
                     "updated_at": "timestamp"}


def test_the_script_creates_the_keyspace_then_the_tables(registry):
    statements = split_statements(render_cassandra(registry))
    assert statements[0].startswith(f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE}")
    assert "{'class': 'NetworkTopologyStrategy', 'datacenter1': 1}" in statements[0]  # the local node's
    assert len(statements) == 4  # the keyspace, then one table per topic with a Cassandra layout
    agg = next(s for s in statements if f"{KEYSPACE}.{AGGREGATED} (" in s)
    assert "PRIMARY KEY ((window_date, payment_type), window_end, window_start)" in agg
    assert "CLUSTERING ORDER BY (window_end DESC, window_start DESC)" in agg
    assert "default_time_to_live = 604800" in agg


def test_the_keyspace_takes_the_deployments_replicas_per_datacenter(registry):
    script = render_cassandra(registry, replication={"dc1": 3, "dc2": 2})
    keyspace = split_statements(script)[0]
    assert keyspace.endswith("{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}")


@pytest.mark.parametrize(("custom", "message"), [
    ({"cassandraClustering": ["window_end desc"]}, "must be in the Cassandra primary key"),
    ({"cassandraPartitionKey": ["window_date", "nope"]}, "'nope' is not a field"),
    ({"cassandraPartitionKey": []}, "non-empty list"),
    ({"cassandraClustering": ["window_end sideways", "window_start"]}, "is not 'column [asc|desc]'"),
    ({"cassandraDayColumn": {"name": "window_date", "of": "payment_type"}}, "is not a timestamp field"),
])
def test_a_layout_that_would_merge_records_or_name_unknown_columns_is_refused(registry, custom, message):
    ds = registry.dataset(AGGREGATED)
    broken = dataclasses.replace(ds, custom={**ds.custom, **custom})
    with pytest.raises(ContractError, match=re.escape(message)):
        cassandra_table(broken)


@pytest.mark.parametrize("text", ["2026-11-27 21:00:10.000", "2026-11-27T21:00:10Z", "2026-11-27T21:00:10.000+00:00",
                                  "2026-11-27T18:00:10-03:00", 1_795_813_210_000])
def test_timestamps_in_flink_iso_and_epoch_forms(text):
    assert parse_timestamp(text) == dt.datetime(2026, 11, 27, 21, 0, 10, tzinfo=dt.UTC)


def test_a_good_record_is_typed_for_its_table(registry):
    table = cassandra_table(registry.dataset(AGGREGATED))
    values = dict(zip(table.column_names, decode(AGGREGATED, table, json.dumps(GOOD).encode(), NOW), strict=True))
    assert values["window_date"] == dt.date(2026, 11, 27), "the UTC day of the window start"
    assert values["window_end"] == dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
    assert values["payment_sum"] == Decimal("30.5") and isinstance(values["payment_min"], Decimal)
    assert values["payment_count"] == 3 and isinstance(values["payment_avg"], float)
    assert values[UPDATED_COLUMN] == NOW


@pytest.mark.parametrize(("change", "reason"), [
    ({"payment_type": "pix"}, "payment_type: 'pix' is not one of"),
    ({"payment_count": 0}, "payment_count: 0 is less than the minimum of 1"),
    ({"window_start": "yesterday"}, "window_start: 'yesterday' is not an ISO-8601 timestamp"),
    ({"payment_sum": None}, "payment_sum: None is not of type 'number'"),
])
def test_a_bad_record_says_why(registry, change, reason):
    table = cassandra_table(registry.dataset(AGGREGATED))
    with pytest.raises(RecordError, match="^" + re.escape(reason)):
        decode(AGGREGATED, table, json.dumps({**GOOD, **change}).encode(), NOW)


def test_not_json_is_refused_and_a_tombstone_is_decoded_from_its_key(registry):
    table = cassandra_table(registry.dataset(AGGREGATED))
    with pytest.raises(RecordError, match="not JSON"):
        decode(AGGREGATED, table, b"{nope", NOW)
    with pytest.raises(RecordError, match="tombstone"):
        decode(AGGREGATED, table, None, NOW)
    key = {"window_start": "2026-11-27 21:00:10.000", "window_end": "2026-11-27 21:00:20.000",
           "payment_type": "boleto"}
    start, end = (dt.datetime(2026, 11, 27, 21, 0, s, tzinfo=dt.UTC) for s in (10, 20))
    assert dict(zip(table.primary_key, decode_key(table, json.dumps(key).encode()), strict=True)) == {
        "window_date": dt.date(2026, 11, 27), "payment_type": "boleto", "window_end": end, "window_start": start}
    assert table.delete_cql().startswith(f"DELETE FROM {table.qualified_name} WHERE window_date = ? AND")
    with pytest.raises(RecordError, match="tombstone key lacks window_end"):
        decode_key(table, json.dumps({"window_start": key["window_start"], "payment_type": "boleto"}).encode())
    with pytest.raises(RecordError, match="not a JSON object"):
        decode_key(table, None)


def test_cql_scripts_split_on_statement_ends_and_drop_comments():
    script = "-- a comment; with a semicolon\nCREATE KEYSPACE k\n  WITH x = 1;\n\nCREATE TABLE k.t (a int);\n"
    assert split_statements(script) == ["CREATE KEYSPACE k\n  WITH x = 1", "CREATE TABLE k.t (a int)"]
