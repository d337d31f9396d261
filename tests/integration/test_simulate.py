"""The live-trading simulator on a real PostgreSQL: rate, determinism, and every change accounted for."""

from __future__ import annotations

import itertools

import psycopg
import pytest

from pipeline.batch.load import load_directory
from pipeline.speed.simulate import Plan, Profile, Writer, segments, simulate

pytestmark = pytest.mark.integration


def loaded(postgres, tiny_dir, name: str):
    load_directory(tiny_dir, postgres.conninfo(), name)
    yield name
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f"drop schema if exists {name} cascade")


@pytest.fixture
def schema(postgres, tiny_dir):
    yield from loaded(postgres, tiny_dir, "sim_test")


@pytest.fixture
def twin(postgres, tiny_dir):
    yield from loaded(postgres, tiny_dir, "sim_twin")


def payments(postgres, schema) -> int:
    with psycopg.connect(postgres.conninfo()) as conn:
        return conn.execute(f"select count(*) from {schema}.order_payments").fetchone()[0]


def test_the_simulator_hits_its_rate_and_every_row_is_accounted_for(postgres, schema):
    before = payments(postgres, schema)
    report = simulate(postgres.conninfo(), schema, rate=300, duration=2.0, seed=3)
    assert 0.8 * 300 <= report.achieved_rate <= 1.2 * 300
    assert set(report.operations) >= {"new_order", "update"}
    assert payments(postgres, schema) == before + report.rows["insert"] - report.rows["delete"]
    with psycopg.connect(postgres.conninfo()) as conn:
        orphans = conn.execute(
            f"select count(*) from {schema}.order_payments p left join {schema}.orders o using (order_id) "
            "where o.order_id is null").fetchone()[0]
    assert orphans == 0, "every simulated payment has its order"


def test_simulated_orders_are_complete_and_pay_their_value(postgres, schema):
    """Every new order has a customer, items of loaded products and sellers, and payments adding up to its
    items' price plus freight (voucher splits and discounts included); cancelled orders have no payment left."""
    with psycopg.connect(postgres.conninfo()) as conn:
        loaded = {r[0] for r in conn.execute(f"select order_id from {schema}.orders")}
    report = simulate(postgres.conninfo(), schema, rate=400, duration=2.0, seed=4)
    assert report.operations["voucher_split"] and report.operations["update"] and report.operations["delete"]
    with psycopg.connect(postgres.conninfo()) as conn:
        rows = conn.execute(f"""
            select o.order_id, o.order_status, c.customer_id is not null,
                   (select count(*) from {schema}.order_items i where i.order_id = o.order_id),
                   (select count(*) from {schema}.order_items i where i.order_id = o.order_id
                      and i.product_id not in (select product_id from {schema}.products)
                      or i.order_id = o.order_id and i.seller_id not in (select seller_id from {schema}.sellers)),
                   (select sum(price + freight_value) from {schema}.order_items i where i.order_id = o.order_id),
                   (select sum(payment_value) from {schema}.order_payments p where p.order_id = o.order_id),
                   o.order_estimated_delivery_date = date_trunc('day', o.order_estimated_delivery_date)
            from {schema}.orders o left join {schema}.customers c using (customer_id)""").fetchall()
    new = [r for r in rows if r[0] not in loaded]
    assert len(new) == report.operations["new_order"]
    for order_id, status, has_customer, items, unknown, value, paid, midnight in new:
        assert has_customer and items > 0 and unknown == 0 and midnight, order_id
        assert paid == value if status != "canceled" else paid is None, (order_id, status, value, paid)


def test_the_sequence_is_fixed_by_the_seed(postgres, schema):
    with psycopg.connect(postgres.conninfo()) as conn:
        profile = Profile.from_database(conn, schema)

    def first(seed: int, n: int = 300):
        return list(itertools.islice(Plan(profile, seed), n))

    assert first(11) == first(11)
    assert first(11) != first(12)
    assert {op.kind for op in first(11, 2000)} == {"new_order", "voucher_split", "update", "delete"}


def test_batched_writes_leave_the_same_rows_as_one_operation_at_a_time(postgres, schema, twin):
    """Segments group a commit's writes by kind; the tables must end as if each operation ran alone."""
    with psycopg.connect(postgres.conninfo()) as conn:
        profile = Profile.from_database(conn, schema)
    ops = list(itertools.islice(Plan(profile, 5), 3000))
    runs = list(segments(ops))
    assert 1 < len(runs) < len(ops) / 5, "orders come back, so segments are cut, yet most writes are grouped"

    def apply(name: str, runs) -> list[tuple]:
        writer = Writer(name)
        with psycopg.connect(postgres.conninfo()) as conn:
            with conn.transaction(), conn.cursor() as cur:
                for run in runs:
                    for statement, params in writer.statements(run):
                        cur.execute(statement, params)
            payments = conn.execute(
                f"select p.order_id, p.payment_sequential, p.payment_type, p.payment_installments, p.payment_value "
                f"from {name}.order_payments p order by 1, 2").fetchall()
            orders = conn.execute(f"select order_id, order_status from {name}.orders order by 1").fetchall()
            items = conn.execute(f"select order_id, order_item_id, product_id, price from {name}.order_items "
                                 "order by 1, 2").fetchall()
            customers = conn.execute(f"select count(*) from {name}.customers").fetchone()[0]
        return [payments, orders, customers, items]

    assert apply(schema, runs) == apply(twin, ([op] for op in ops))


def test_a_rerun_with_the_same_seed_trades_in_new_orders(postgres, schema):
    """Every change a run reports is one row change, on a database an earlier run of the same seed traded in too
    (a rerun must not touch the first run's orders, or CDC would carry changes nobody counted)."""
    def row_changes() -> int:
        with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
            conn.execute("select pg_stat_force_next_flush()")
            return conn.execute("select n_tup_ins + n_tup_upd + n_tup_del from pg_stat_user_tables "
                                "where schemaname = %s and relname = 'order_payments'", (schema,)).fetchone()[0]

    for _ in range(2):
        before = row_changes()
        report = simulate(postgres.conninfo(), schema, rate=400, duration=3.0, seed=7)
        assert row_changes() - before == report.changes
