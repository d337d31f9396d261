"""The loader against a real PostgreSQL: DDL from contracts, COPY, idempotent reloads, quarantine."""

from __future__ import annotations

import psycopg
import pytest
from typer.testing import CliRunner

from pipeline.batch.load import load_directory
from pipeline.cli import EXIT_QUARANTINED, app
from pipeline.settings import get_settings
from tests.fixtures.tiny import ROWS

pytestmark = pytest.mark.integration
PG_TYPES = {"varchar": "character varying", "timestamp": "timestamp without time zone",
            "timestamptz": "timestamp with time zone"}


@pytest.fixture
def postgres(engines):
    """Each engines backend's PostgreSQL in turn: processes, then containers (tests/conftest.py)."""
    return engines.postgres


@pytest.fixture
def schema(postgres, request):
    name = "t_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    yield name
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f"drop schema if exists {name} cascade")


def counts(postgres, schema):
    with psycopg.connect(postgres.conninfo()) as conn:
        return {t: conn.execute(f"select count(*) from {schema}.{t}").fetchone()[0] for t in ROWS}


def test_tables_match_their_contracts(postgres, schema, registry, tiny_dir):
    load_directory(tiny_dir, postgres.conninfo(), schema)
    with psycopg.connect(postgres.conninfo()) as conn:
        for ds in registry.source_tables():
            cols = conn.execute(
                "select column_name, data_type, character_maximum_length, numeric_precision, numeric_scale, "
                "is_nullable from information_schema.columns where table_schema = %s and table_name = %s "
                "order by ordinal_position", (schema, ds.name)).fetchall()
            assert [c[0] for c in cols] == [*ds.column_names, "_changed_at"]
            for col, (_, data_type, length, precision, scale, nullable) in zip(ds.columns, cols, strict=False):
                base = col.physical_type.split("(")[0]
                assert data_type == PG_TYPES.get(base, base), col.name
                if base == "varchar":
                    assert length == int(col.physical_type[8:-1])
                if base == "numeric":
                    assert f"numeric({precision},{scale})" == col.physical_type
                assert (nullable == "NO") == col.required, col.name
            pk = conn.execute(
                "select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid "
                "and a.attnum = any(i.indkey) where i.indrelid = %s::regclass and i.indisprimary "
                "order by array_position(i.indkey, a.attnum)", (f"{schema}.{ds.name}",)).fetchall()
            assert [r[0] for r in pk] == ds.primary_key


def test_load_counts_equal_the_files_and_reload_adds_nothing(postgres, schema, tiny_dir):
    first = load_directory(tiny_dir, postgres.conninfo(), schema)
    assert {r.table: r.loaded for r in first.results} == ROWS
    assert counts(postgres, schema) == ROWS
    assert first.quarantined == 0
    second = load_directory(tiny_dir, postgres.conninfo(), schema)
    assert counts(postgres, schema) == ROWS
    keyed = [r for r in second.results if r.table != "geolocation"]
    assert sum(r.inserted + r.updated for r in keyed) == 0


def test_reload_touches_only_changed_rows(postgres, schema, tiny_dir):
    load_directory(tiny_dir, postgres.conninfo(), schema)
    path = tiny_dir / "olist_order_payments_dataset.csv"
    path.write_text(path.read_text().replace("voucher,1,2.00", "voucher,1,2.50"))
    with psycopg.connect(postgres.conninfo()) as conn:
        before = dict(conn.execute(
            f"select payment_sequential, _changed_at from {schema}.order_payments").fetchall())
    result = load_directory(tiny_dir, postgres.conninfo(), schema)
    payments = next(r for r in result.results if r.table == "order_payments")
    assert (payments.inserted, payments.updated) == (0, 1)
    with psycopg.connect(postgres.conninfo()) as conn:
        after = dict(conn.execute(
            f"select payment_sequential, _changed_at from {schema}.order_payments").fetchall())
        value = conn.execute(
            f"select payment_value::text from {schema}.order_payments where payment_sequential = 3").fetchone()
    assert value == ("2.50",)
    assert after[3] > before[3]
    assert after[1] == before[1] and after[2] == before[2]


def test_bad_rows_land_in_quarantine_and_valid_rows_load(postgres, schema, tiny_dir):
    path = tiny_dir / "olist_order_payments_dataset.csv"
    good = path.read_text()
    oid = good.splitlines()[1].split(",")[0]
    path.write_text(good + f"{oid},4,pix,1,9.99\n{oid},5,voucher,1\n{oid},6,voucher,1,-3.00\n")
    result = load_directory(tiny_dir, postgres.conninfo(), schema)
    payments = next(r for r in result.results if r.table == "order_payments")
    assert (payments.read, payments.loaded, payments.quarantined) == (6, 3, 3)
    with psycopg.connect(postgres.conninfo()) as conn:
        rows = conn.execute(
            f"select source_file, line_number, column_name, reason from {schema}.load_quarantine "
            "order by line_number").fetchall()
    f = "olist_order_payments_dataset.csv"
    assert rows == [
        (f, 5, "payment_type", "payment_type: 'pix' is not one of the contract's values"),
        (f, 6, None, "wrong column count: 4 fields, expected 5"),
        (f, 7, "payment_value", "payment_value: '-3.00' is below the minimum 0"),
    ]
    path.write_text(good)
    load_directory(tiny_dir, postgres.conninfo(), schema)
    with psycopg.connect(postgres.conninfo()) as conn:
        assert conn.execute(f"select count(*) from {schema}.load_quarantine").fetchone() == (0,)


@pytest.fixture
def cli_env(postgres, engines, monkeypatch):
    monkeypatch.setenv("OLIST_STATE_DIR", str(engines.settings.state_dir))
    monkeypatch.setenv("OLIST_ENGINES", engines.name)
    monkeypatch.setenv("OLIST_PG_SCHEMA", "t_cli")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute("drop schema if exists t_cli cascade")


def test_cli_exit_code_tells_whether_rows_were_quarantined(cli_env, tiny_dir):
    ok = cli_env.invoke(app, ["load", "--data-dir", str(tiny_dir)])
    assert ok.exit_code == 0, ok.output
    assert "16 loaded, 0 quarantined" in ok.output
    path = tiny_dir / "olist_sellers_dataset.csv"
    path.write_text(path.read_text() + '"5504c0cb71d7fa48d967e0e4c94d59d9","13023",campinas,XX\n')
    bad = cli_env.invoke(app, ["load", "--data-dir", str(tiny_dir)])
    assert bad.exit_code == EXIT_QUARANTINED, bad.output
    assert "olist_sellers_dataset.csv:3: seller_state: 'XX' is not one of the contract's values" in bad.output


def test_cli_missing_column_is_one_line_not_a_traceback(cli_env, tiny_dir):
    path = tiny_dir / "olist_orders_dataset.csv"
    path.write_text(path.read_text().replace('"order_status",', '"status",'))
    result = cli_env.invoke(app, ["load", "--data-dir", str(tiny_dir)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "olist_orders_dataset.csv: missing column 'order_status' (table orders)" in result.output


def test_rows_refused_only_for_a_quarantined_parent_say_so_and_are_counted_apart(postgres, schema, tiny_dir):
    """An order quarantined for its own fault takes its payments with it: they say their order was quarantined
    and are counted apart; a payment of an order that never existed is an orphan, counted as the row's own."""
    orders = tiny_dir / "olist_orders_dataset.csv"
    lines = orders.read_text().splitlines()
    fields = lines[1].split(",")
    oid, fields[2] = fields[0], '"lost"'
    lines[1] = ",".join(fields)
    orders.write_text("\n".join(lines) + "\n")
    payments = tiny_dir / "olist_order_payments_dataset.csv"
    text = payments.read_text()
    children = sum(1 for line in text.splitlines()[1:] if line.split(",")[0].strip('"') == oid.strip('"'))
    payments.write_text(text + f'"{"f" * 32}",1,"boleto",1,9.99\n')
    result = load_directory(tiny_dir, postgres.conninfo(), schema)
    by_table = {r.table: r for r in result.results}
    assert (by_table["orders"].quarantined, by_table["orders"].quarantined_for_parent) == (1, 0)
    assert children >= 1
    pay = by_table["order_payments"]
    assert (pay.quarantined, pay.quarantined_for_parent) == (children + 1, children)
    reasons = sorted(b.reason for b in pay.bad)
    assert sum("its orders row was quarantined" in r for r in reasons) == children
    assert sum("not found in orders.order_id" in r for r in reasons) == 1
    assert result.quarantined_for_parent >= children
