"""PostgreSQL -> S3 Parquet ingestion against real PostgreSQL and a real S3 endpoint."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline.batch.ingest as ingest_mod
from pipeline.batch.ingest import ingest
from pipeline.batch.ingest.manifest import committed_files, manifests
from pipeline.batch.load import apply_schema, load_directory
from tests.fixtures.tiny import ROWS

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres(request, s3_location):
    """The PostgreSQL of the S3 location's backend: the containers' beside LocalStack in a container, else the
    session's (conftest's ``postgres``)."""
    if request.node.callspec.params.get("s3_location") == "containers":
        return request.getfixturevalue("containers").postgres
    return request.getfixturevalue("postgres")


@pytest.fixture
def lane(postgres, s3_location, tiny_dir, registry):
    """A loaded schema and an empty bronze prefix of its own."""
    schema = f"ing_{uuid.uuid4().hex[:8]}"
    bronze = f"bronze-{schema}"
    load_directory(tiny_dir, postgres.conninfo(), schema)
    yield schema, bronze
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f"drop schema if exists {schema} cascade")


def bronze_table(loc, bronze, table):
    fs = loc.arrow_fs()
    files = committed_files(manifests(loc, fs, bronze, table))
    return pq.ParquetDataset([f.path for f in files], filesystem=fs).read() if files else None


def test_first_run_copies_everything_typed_from_the_contracts(postgres, s3_location, lane):
    schema, bronze = lane
    results = {r.table: r for r in ingest(postgres.conninfo(), s3_location, schema, bronze)}
    assert {t: r.copied for t, r in results.items()} == ROWS
    assert all(r.reconciled for r in results.values())
    payments = bronze_table(s3_location, bronze, "order_payments")
    assert payments.schema.field("payment_value").type == pa.decimal128(12, 2)
    assert payments.schema.field("payment_installments").type == pa.int16()
    assert sorted(payments.column("payment_value").to_pylist()) == [Decimal("2.00"), Decimal("18.12"),
                                                                     Decimal("18.59")]
    customers = bronze_table(s3_location, bronze, "customers")
    assert "09790" in customers.column("customer_zip_code_prefix").to_pylist()
    orders = bronze_table(s3_location, bronze, "orders")
    assert orders.schema.field("order_purchase_timestamp").type == pa.timestamp("us")
    keys = [f.path for f in committed_files(manifests(s3_location, s3_location.arrow_fs(), bronze, "orders"))]
    assert all(f"/{bronze}/orders/ingest_date=" in "/" + k for k in keys)


def test_rerun_is_a_no_op_and_changes_are_copied_once(postgres, s3_location, lane, tiny_dir):
    schema, bronze = lane
    ingest(postgres.conninfo(), s3_location, schema, bronze)
    again = ingest(postgres.conninfo(), s3_location, schema, bronze)
    assert sum(r.copied for r in again) == 0
    path = tiny_dir / "olist_order_payments_dataset.csv"
    path.write_text(path.read_text().replace("voucher,1,2.00", "voucher,1,2.50"))
    load_directory(tiny_dir, postgres.conninfo(), schema)
    third = {r.table: r for r in ingest(postgres.conninfo(), s3_location, schema, bronze)}
    assert third["order_payments"].copied == 1 and third["order_payments"].mode == "incremental"
    assert sum(r.copied for r in third.values()) == 1
    assert third["order_payments"].reconciled


def test_a_run_killed_before_its_manifest_is_invisible_and_completed_next_time(
        postgres, s3_location, lane, monkeypatch):
    schema, bronze = lane

    def crash(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(ingest_mod, "write_manifest", crash)
    with pytest.raises(RuntimeError):
        ingest(postgres.conninfo(), s3_location, schema, bronze, tables=["orders"])
    assert bronze_table(s3_location, bronze, "orders") is None  # files exist, but no reader sees them
    monkeypatch.undo()
    result = ingest(postgres.conninfo(), s3_location, schema, bronze, tables=["orders"])[0]
    assert (result.orphans_removed, result.copied, result.reconciled) == (1, 2, True)
    assert bronze_table(s3_location, bronze, "orders").num_rows == 2


OPS = st.lists(st.one_of(
    st.tuples(st.just("insert"), st.integers(1, 5)),
    st.tuples(st.just("update"), st.integers(1, 3)),
    st.tuples(st.just("delete"), st.integers(1, 2)),
    st.tuples(st.just("reinsert"), st.integers(1, 2)),  # delete and insert again in one transaction
    st.tuples(st.just("ingest"), st.just(0)),
    st.tuples(st.just("concurrent"), st.integers(1, 3)),  # a writer whose transaction commits while ingest runs
), min_size=1, max_size=10)


def _change(conn, schema: str, op: str, n: int, seq: list[int]) -> None:
    """Apply one generated operation to order_payments of ``schema`` on ``conn``."""
    table = f"{schema}.order_payments"
    some = f"(select payment_sequential from {table} order by random() limit {n})"
    if op == "insert":
        for _ in range(n):
            conn.execute(f"insert into {table} values ('{'a' * 32}', {seq[0]}, 'boleto', 1, {seq[0]}.25)")
            seq[0] += 1
    elif op == "update":
        conn.execute(f"update {table} set payment_value = payment_value + 1 where payment_sequential in {some}")
    elif op == "delete":
        conn.execute(f"delete from {table} where payment_sequential in {some}")
    elif op == "reinsert":
        for (s,) in conn.execute(f"delete from {table} where payment_sequential in {some} "
                                 "returning payment_sequential").fetchall():
            conn.execute(f"insert into {table} values ('{'a' * 32}', {s}, 'voucher', 1, {s}.75)")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_ingestion_never_loses_or_duplicates_a_change(postgres, s3_location, registry, ops):
    """Under any sequence of inserts, updates, deletes (and a delete and insert of one key in one transaction),
    (re-)runs, and writers whose transaction is open while ingest runs and commits after it: silver's view of
    bronze (the newest version of each key unless it is a delete) equals PostgreSQL's table, no version is copied
    twice, every delete is recorded, and each run reconciles."""
    schema, bronze = f"prop_{uuid.uuid4().hex[:8]}", f"bronze-prop-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        apply_schema(conn, registry, schema)
    try:
        seq = [1]
        for op, n in [*ops, ("ingest", 0)]:
            if op == "ingest":
                assert ingest(postgres.conninfo(), s3_location, schema, bronze, tables=["order_payments"])[0].reconciled
            elif op == "concurrent":
                with psycopg.connect(postgres.conninfo()) as writer:  # one transaction, committed on exit
                    _change(writer, schema, "insert", n, seq)
                    _change(writer, schema, "delete", 1, seq)
                    result = ingest(postgres.conninfo(), s3_location, schema, bronze, tables=["order_payments"])[0]
                    assert result.reconciled, "the open transaction's changes are neither seen nor counted yet"
            else:
                with psycopg.connect(postgres.conninfo()) as conn:
                    _change(conn, schema, op, n, seq)
        with psycopg.connect(postgres.conninfo()) as conn:
            source = dict(conn.execute(
                f"select payment_sequential, payment_value from {schema}.order_payments").fetchall())
            deletes = conn.execute(f"select count(*) from {schema}.deleted_rows").fetchone()[0]
        versions = bronze_table(s3_location, bronze, "order_payments")
        rows = [] if versions is None else list(zip(*(versions.column(c).to_pylist() for c in (
            "payment_sequential", "_changed_at", "_deleted", "payment_value")), strict=True))
        assert len(rows) == len({r[:3] for r in rows}), "a row version was copied twice"
        assert sum(1 for r in rows if r[2]) == deletes, "every delete is recorded in bronze, once"
        latest = {}
        for s, _changed, deleted, value in sorted(rows, key=lambda r: (r[1], not r[2])):  # a tie: the live row wins
            latest[s] = None if deleted else value
        assert {s: v for s, v in latest.items() if v is not None} == source
    finally:
        with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
            conn.execute(f"drop schema if exists {schema} cascade")
