"""The dashboard's data access without a browser: slicers to SQL, and the copy-on-read warehouse snapshot."""

from __future__ import annotations

import duckdb
import pytest

from pipeline.serving.dashboard.warehouse import Filters, WarehouseSnapshot, WarehouseUnavailable, kpis, where


def test_filters_normalise_the_dropdown_values():
    assert Filters.of("SP", None, ["2018", 2017], [], None) == Filters(("SP",), (), (2017, 2018), (), ())


def test_where_binds_every_slicer_as_a_parameter():
    w = where(Filters.of(["SP", "RJ"], None, [2018], None, ["night"]), state="s", city="c", year="y", month="m",
              period="p")
    assert w.sql == "where s in (?, ?) and y in (?) and p in (?)"
    assert w.params == ["RJ", "SP", 2018, "night"]


def make_warehouse(path, orders: int) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists gold")
        con.execute("create or replace table gold.mart_headline_kpis as select 1 as orders")
        con.execute("create or replace table gold.dim_time_of_day as select 0 as minute_of_day, 'dawn' as "
                    "period_of_day")
        con.execute(f"create or replace table gold.fct_orders as select 'o' || i as order_id, 'SP' as customer_state,"
                    f" 'x' as customer_city, date '2018-01-01' as purchase_date, 0 as purchase_minute_of_day "
                    f"from range({orders}) t(i)")
        con.execute("create or replace table gold.fct_order_items as select o.*, 'p' as product_id, 1.5 as price, "
                    "0.5 as freight_value from gold.fct_orders o")


def test_the_snapshot_follows_the_file_but_never_a_file_being_written(tmp_path):
    path = tmp_path / "olist.duckdb"
    wh = WarehouseSnapshot(path, tmp_path / "copies")
    with pytest.raises(WarehouseUnavailable):
        wh.refresh()
    make_warehouse(path, 3)
    assert kpis(wh, Filters())["orders"] == 3
    writer = duckdb.connect(str(path))  # a writer holds the file: the dashboard reads its copy, takes no lock
    writer.execute("create or replace table gold.fct_orders as select * from gold.fct_orders limit 1")
    assert kpis(wh, Filters())["orders"] in (1, 3)  # the last good copy, or the checkpointed new one
    writer.close()
    make_warehouse(path, 5)
    assert kpis(wh, Filters.of("SP"))["orders"] == 5
    assert kpis(wh, Filters.of("RJ"))["orders"] == 0
    wh.close()
