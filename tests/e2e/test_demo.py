"""The demo end to end — PostgreSQL, sample, load, S3 ingestion, dbt build — and its figures recomputed
straight from the CSV files by an independent route (Python's csv module and Decimal)."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from decimal import Decimal

import duckdb
import psycopg
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.settings import get_settings
from pipeline.transform import warehouse_path

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(postgres, s3, test_settings, tmp_path_factory):
    """Run `olist demo` once against the session's engines, in a schema and bronze prefix of its own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OLIST_STATE_DIR", str(test_settings.state_dir))
        mp.setenv("OLIST_DATA_DIR", str(tmp_path_factory.mktemp("sample")))
        mp.setenv("OLIST_PG_SCHEMA", "e2e_demo")
        mp.setenv("OLIST_BRONZE_PREFIX", "bronze-e2e")
        get_settings.cache_clear()
        result = CliRunner().invoke(app, ["demo"])
        settings = get_settings()
        yield result, settings
        get_settings.cache_clear()
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute("drop schema if exists e2e_demo cascade")


def rows(settings, name):
    with (settings.data_dir / name).open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def gold(settings, sql):
    with duckdb.connect(str(warehouse_path(settings))) as con:
        return con.execute(sql).fetchall()


def test_demo_runs_the_batch_lane(demo):
    result, _ = demo
    assert result.exit_code == 0, result.output
    assert "0 quarantined" in result.output
    assert "all passed" in result.output
    assert "lineage docs:" in result.output


def normalise(value, logical_type):
    if value in (None, ""):
        return None
    if logical_type == "number":
        return round(float(value), 9)
    if logical_type == "integer":
        return int(float(value))
    return str(value)


def test_every_loaded_value_equals_the_file(demo, postgres, registry):
    """Read back every table and compare it, value by value, with the CSV read by Python's csv module."""
    _, settings = demo
    with psycopg.connect(postgres.conninfo()) as conn:
        for ds in registry.source_tables():
            types = [c.logical_type for c in ds.columns]
            cols = ", ".join(f"{c}::text" for c in ds.column_names)
            in_db = sorted((tuple(normalise(v, t) for v, t in zip(row, types, strict=True))
                            for row in conn.execute(f"select {cols} from e2e_demo.{ds.name}")), key=repr)
            in_file = sorted((tuple(normalise(r[c], t) for c, t in zip(ds.column_names, types, strict=True))
                              for r in rows(settings, ds.source_file)), key=repr)
            assert in_db == in_file, ds.name


@pytest.fixture(scope="module")
def expected(demo):
    """The headline figures, computed from the files alone."""
    _, s = demo
    orders = {r["order_id"]: r for r in rows(s, "olist_orders_dataset.csv")}
    state = {r["customer_id"]: r["customer_state"] for r in rows(s, "olist_customers_dataset.csv")}
    items = rows(s, "olist_order_items_dataset.csv")
    payments = rows(s, "olist_order_payments_dataset.csv")
    by_year, by_state = defaultdict(Decimal), defaultdict(Decimal)
    for item in items:
        order = orders[item["order_id"]]
        by_year[int(order["order_purchase_timestamp"][:4])] += Decimal(item["price"])
        by_state[state[order["customer_id"]]] += Decimal(item["price"])
    mix_count, mix_value = Counter(), defaultdict(Decimal)
    for p in payments:
        mix_count[p["payment_type"]] += 1
        mix_value[p["payment_type"]] += Decimal(p["payment_value"])
    delivered = [o for o in orders.values() if o["order_delivered_customer_date"]]
    on_time = sum(o["order_delivered_customer_date"] <= o["order_estimated_delivery_date"] for o in delivered)
    return {
        "orders": len(orders), "order_items": len(items), "products": len({i["product_id"] for i in items}),
        "total_sales": sum(Decimal(i["price"]) for i in items),
        "total_freight": sum(Decimal(i["freight_value"]) for i in items),
        "by_year": dict(by_year), "by_state": dict(by_state),
        "mix": {t: (mix_count[t], mix_value[t]) for t in mix_count},
        "on_time_rate": on_time / len(delivered),
    }


def test_headline_kpis_equal_the_files_to_the_cent(demo, expected):
    _, s = demo
    (orders, items, products, sales, freight, on_time), = gold(
        s, "select orders, order_items, products, total_sales, total_freight, on_time_rate "
           "from gold.mart_headline_kpis")
    assert (orders, items, products) == (expected["orders"], expected["order_items"], expected["products"])
    assert (sales, freight) == (expected["total_sales"], expected["total_freight"])
    assert on_time == pytest.approx(expected["on_time_rate"], abs=1e-12)


def test_sales_by_purchase_year_and_state_equal_the_files(demo, expected):
    _, s = demo
    assert dict(gold(s, "select purchase_year, sum(sales) from gold.mart_sales group by 1")) == expected["by_year"]
    assert dict(gold(s, "select customer_state, sum(sales) from gold.mart_sales group by 1")) == expected["by_state"]


def test_payment_mix_equals_the_files(demo, expected):
    _, s = demo
    mix = {t: (n, v) for t, n, v in gold(
        s, "select payment_type, sum(payments), sum(payment_value) from gold.mart_payment_mix group by 1")}
    assert mix == expected["mix"]


def test_the_same_models_promote_to_snowflake_and_match_duckdb(demo):
    """`olist promote` on fakesnow: bronze from the manifested files, every model and data test on the
    snowflake target, then each gold table equal to DuckDB's."""
    result, _ = demo
    assert result.exit_code == 0
    promoted = CliRunner().invoke(app, ["promote"])
    assert promoted.exit_code == 0, promoted.output
    assert "dbt build on snowflake" in promoted.output and "all passed" in promoted.output
    assert "21 gold tables identical on both targets" in promoted.output
