"""The demo end to end — PostgreSQL, sample, load, S3 ingestion, dbt build, then the streaming lane — with
its figures recomputed straight from the CSV files by an independent route (Python's csv module and
Decimal), and the raw archive replayed against PostgreSQL. Then the two lanes as one lambda system, against the
same engines: a delete reaching gold, the demo run again, windows holding only streamed changes, the batch
recompute reconciled with Cassandra after 25 s of trading (and a row altered by hand found), and a full
`olist down` -> up mid-stream that loses, repeats and rewrites nothing."""

from __future__ import annotations

import contextlib
import csv
import json
import time
import urllib.request
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import duckdb
import psutil
import psycopg
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from emulation.resources import engine
from pipeline import platform
from pipeline.batch.promote import rehearse
from pipeline.console import show_demo
from pipeline.contracts import stream_names
from pipeline.demo import run_demo
from pipeline.lake import ArchiveLayout
from pipeline.settings import get_settings
from pipeline.speed.lane import settled
from pipeline.speed.topics import end_offsets
from pipeline.storage import s3_location

pytestmark = pytest.mark.e2e

SIMULATED = {"customers", "orders", "order_items", "order_payments"}  # tables the demo's simulator writes to


@pytest.fixture(scope="module")
def demo(postgres, s3, test_settings, tmp_path_factory):
    """Run the demo once against the session's engines, in a schema and bronze prefix of its own; yields its
    report (and the settings it ran with)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OLIST_STATE_DIR", str(test_settings.state_dir))
        mp.setenv("OLIST_DATA_DIR", str(tmp_path_factory.mktemp("sample")))
        mp.setenv("OLIST_PG_SCHEMA", "e2e_demo")
        mp.setenv("OLIST_BRONZE_PREFIX", "bronze-e2e")
        mp.setenv("OLIST_STREAM_SECONDS", "8")
        mp.setenv("OLIST_STREAM_RATE", "400")
        get_settings.cache_clear()
        settings = get_settings()
        report = run_demo(settings)
        yield report, settings
        get_settings.cache_clear()
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute("drop schema if exists e2e_demo cascade")


def rows(settings, name):
    with (settings.data_dir / name).open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def gold(settings, sql):
    with duckdb.connect(str(settings.warehouse_path)) as con:
        return con.execute(sql).fetchall()


def test_demo_runs_the_batch_lane(demo):
    report, settings = demo
    assert report.problems == []
    assert report.batch.load.quarantined == 0 and report.batch.load.loaded > 30_000
    assert report.batch.ingest.reconciled
    assert report.batch.transform.success and report.batch.transform.tests > 200
    assert report.batch.transform.docs is not None and report.batch.transform.docs.exists()
    # dbt's target (manifest, partial parse, docs) is the deployment's own: another run from this clone never shares it
    assert report.batch.transform.docs.is_relative_to(settings.state_dir)
    show_demo(report)  # the CLI's rendering of it works on a real report


def normalise(value, logical_type):
    if value in (None, ""):
        return None
    if logical_type == "number":
        return round(float(value), 9)
    if logical_type == "integer":
        return int(float(value))
    return str(value)


def test_every_loaded_value_equals_the_file(demo, postgres, registry):
    """Read back every table and compare it, value by value, with the CSV read by Python's csv module.
    The simulator then added orders of its own (and changes only those): they are left out by key."""
    _, settings = demo
    with psycopg.connect(postgres.conninfo()) as conn:
        for ds in registry.source_tables():
            types = [c.logical_type for c in ds.columns]
            cols = ", ".join(f"{c}::text" for c in ds.column_names)
            in_db = sorted((tuple(normalise(v, t) for v, t in zip(row, types, strict=True))
                            for row in conn.execute(f"select {cols} from e2e_demo.{ds.name}")), key=repr)
            in_file = sorted((tuple(normalise(r[c], t) for c, t in zip(ds.column_names, types, strict=True))
                              for r in rows(settings, ds.source_file)), key=repr)
            if ds.name in SIMULATED:
                key = [ds.column_names.index(c) for c in ds.primary_key]
                loaded = {tuple(row[i] for i in key) for row in in_file}
                in_db = [row for row in in_db if tuple(row[i] for i in key) in loaded]
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
    # the promised day is the deadline: delivered during it is on time
    on_time = sum(o["order_delivered_customer_date"][:10] <= o["order_estimated_delivery_date"][:10] for o in delivered)
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
    """The promotion rehearsal on fakesnow: bronze by COPY INTO from exactly the manifested files (PUT to an internal
    stage), every model and data test on the snowflake target, then each gold table equal to DuckDB's."""
    report, settings = demo
    assert report.problems == []
    promoted = rehearse(settings)
    assert promoted.stand_in and promoted.transform.target == "snowflake" and promoted.transform.success
    assert promoted.bronze_load == "stage", "fakesnow: the committed files PUT to an internal stage, then COPY INTO"
    archive = stream_names().archive
    assert promoted.bronze_rows == {t.table: t.source_rows for t in report.batch.ingest.tables} | {
        archive: len(archived(settings))}, "every source table's rows, and the raw archive"
    assert len(promoted.compared) == 24 and promoted.identical, promoted.compared


class InProcessDuckDB:
    """WarehouseSnapshot's query surface over the file itself (DuckDB shares one open database per process)."""

    def __init__(self, path) -> None:
        self.path = path

    def query(self, sql, params=()):
        with duckdb.connect(str(self.path)) as con:
            cur = con.execute(sql, list(params))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def close(self) -> None:
        pass


def test_the_snowflake_dashboard_reads_what_the_duckdb_one_reads(demo):
    """The BI views' shared SQL on the Snowflake target (fakesnow, as `olist promote` left it) gives the
    DuckDB warehouse's numbers: the KPI cards unfiltered and sliced, and the top categories."""
    from pipeline.batch.promote import same_rows, snowflake_target
    from pipeline.serving.dashboard.snowflake_source import SnowflakeWarehouse
    from pipeline.serving.dashboard.warehouse import Filters, WarehouseSnapshot, kpis, top_categories

    _, settings = demo
    local = WarehouseSnapshot(settings.warehouse_path)
    if Path(f"{local.path}.wal").exists():
        # `olist demo` ran dbt in this process, whose DuckDB session may still hold the file (WAL beside it),
        # so a snapshot would never be taken here; read the file through that session instead.
        local.close()
        local = InProcessDuckDB(settings.warehouse_path)
    remote = SnowflakeWarehouse(snowflake_target(settings))

    def plain(rows: list[dict]) -> list[tuple]:
        return [tuple((k, float(v) if isinstance(v, Decimal) else v) for k, v in sorted(r.items())) for r in rows]

    def same(left: list[dict], right: list[dict]) -> bool:
        """Same columns and rows; numbers agree to 1e-6 (Snowflake's decimals against DuckDB's)."""
        flat = [[tuple(x for pair in row for x in pair) for row in plain(rows)] for rows in (left, right)]
        return same_rows(*flat)

    try:
        for f in (Filters(), Filters.of(states="SP", years=2018)):
            on_duckdb, on_snowflake = kpis(local, f), kpis(remote, f)
            assert on_duckdb["orders"] > 0
            assert same([on_duckdb], [on_snowflake]), (f, on_duckdb, on_snowflake)
            for by in ("sales", "items"):
                on_duckdb, on_snowflake = top_categories(local, f, by), top_categories(remote, f, by)
                assert on_duckdb and same(on_duckdb, on_snowflake), (f, by, on_duckdb, on_snowflake)
    finally:
        local.close()
        remote.close()


# -- the streaming lane: PostgreSQL -> Debezium -> olist.order_payments -> S3 raw archive --------------------


def archived(settings) -> list[dict]:
    """Every record in the raw archive as its readers see it (the manifested files), in offset order; also checks
    that no offset is in two of the archive's Parquet files."""
    loc, names = s3_location(settings), stream_names()
    fs = loc.arrow_fs()
    files = [f.path for f in fs.get_file_info(pafs.FileSelector(loc.path(f"{settings.raw_prefix}/{names.raw}"),
                                                                 recursive=True)) if f.path.endswith(".parquet")]
    in_files = [o for f in files for o in pq.read_table(f, filesystem=fs).column("kafka_offset").to_pylist()]
    assert len(in_files) == len(set(in_files)), "an offset is in two files"
    return ArchiveLayout(loc, settings.raw_prefix, names.raw).read().to_pylist()


def topic_end(settings) -> int:
    return sum(end_offsets(engine("kafka", settings).client_config(), stream_names().raw).values())


def test_demo_streams_every_committed_change_to_the_topic_and_the_archive(demo):
    report, _ = demo
    stream = report.stream
    assert stream is not None and stream.simulation.changes > 1000
    assert stream.delivered == stream.simulation.changes and stream.complete
    assert stream.raw_topic == stream_names().raw
    assert stream.archive.records > 0 and stream.archive.files and stream.archive.dead_lettered == 0


def test_demo_serves_flink_windows_from_cassandra_and_leaves_the_dashboard_up(demo):
    report, _ = demo
    served = report.stream.served
    assert served is not None and served.written > 0 and served.dead_lettered == 0
    assert report.windows and all(w["payment_count"] > 0 for w in report.windows)
    assert report.dashboard_url and report.dashboard_url.startswith("http://127.0.0.1:")
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(report.dashboard_url, timeout=30) as resp:
        assert resp.status == 200


def test_every_service_listens_on_loopback_only(demo):
    """After a stream has run through the whole lane: every listening socket of every service's process tree
    (the engines, the JVMs their launchers start, PyFlink's Python and Java) is on 127.0.0.1."""
    _, settings = demo
    found = platform.listeners(settings)
    table = "\n".join(f"{x.service:<10} {x.process:<16} pid {x.pid:<7} {x.address}:{x.port}" for x in found)
    print(f"\nlisteners after the demo:\n{table}")
    engines = {"postgres", "s3", "kafka", "connect", "cassandra", "flink", "dashboard"}
    assert engines <= {x.service for x in found}, table
    exposed = [x for x in found if not x.loopback]
    assert not exposed, "listening beyond loopback:\n" + "\n".join(
        f"{x.service}: {x.process} (pid {x.pid}) on {x.address}:{x.port}" for x in exposed)


def test_no_secret_is_in_any_process_arguments_or_log_and_every_file_holding_one_is_private(demo):
    """After the whole lane ran: none of the platform's credentials (PostgreSQL's three roles, every Kafka
    principal, Connect's REST user, the Cassandra roles, the S3 key) is in the command line of any process on the
    machine or in any log under the state folder; a file that holds one is readable by its owner only."""
    _, settings = demo
    found = {name: secret for name, secret in platform.secrets(settings).items() if secret}
    holders = sorted(found)  # never the values: an assertion message would print them
    assert len(holders) == 14, holders  # PostgreSQL 3, Kafka 6, Cassandra 3, Connect, S3
    for proc in psutil.process_iter(["pid", "cmdline"]):
        args = " ".join(proc.info["cmdline"] or [])
        leaked = [name for name, secret in found.items() if secret in args]
        assert not leaked, f"pid {proc.info['pid']} has {leaked} in its arguments"
    contents = {}  # the engines keep writing: a checkpoint or segment may go between listing and reading it
    for path in settings.state_dir.rglob("*"):
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 64 * 2**20:
                contents[path] = (path.read_bytes(), path.stat().st_mode)
    logs = {p for p in contents if ".log" in p.name or p.parent.name in ("log", "logs") or p.suffix in (".out", ".err")}
    assert len(logs) >= 5, "the engines write logs under the state folder"
    holding = {p: [n for n, s in found.items() if s.encode() in data] for p, (data, _) in contents.items()}
    in_logs = {str(p): names for p, names in holding.items() if names and p in logs}
    assert not in_logs, f"secrets in logs: {in_logs}"
    public = {str(p): names for p, names in holding.items() if names and contents[p][1] & 0o077}
    assert not public, f"secrets in files others may read: {public}"


def test_the_archive_holds_every_offset_once_and_replays_to_the_table(demo, postgres):
    """Exactly once: offsets 0..end-1 each in one file. Replaying the envelopes by key (snapshot, then
    inserts, updates, deletes) rebuilds the PostgreSQL table row for row."""
    _, settings = demo
    records = archived(settings)
    assert [r["kafka_offset"] for r in records] == list(range(topic_end(settings)))
    table: dict[tuple, tuple] = {}
    for r in records:
        if r["record_value"] is None:
            continue  # the tombstone after a delete
        event = json.loads(r["record_value"])
        row = event["after"] or event["before"]
        key = (row["order_id"], row["payment_sequential"])
        if event["op"] == "d":
            del table[key]
        else:
            table[key] = (row["payment_type"], row["payment_installments"], round(row["payment_value"], 2))
    with psycopg.connect(postgres.conninfo()) as conn:
        in_db = {(o, s): (t, i, float(v)) for o, s, t, i, v in conn.execute(
            "select order_id, payment_sequential, payment_type, payment_installments, payment_value "
            "from e2e_demo.order_payments")}
    assert table == in_db


def test_insert_update_delete_arrive_once_in_commit_order_in_the_archive(demo, postgres):
    """debezium-examples style: change one row three times in PostgreSQL, archive, and find exactly those
    events (create, update, delete, tombstone) for its key, once each and in commit order."""
    _, settings = demo
    order_id = "e2e0" + "f" * 28
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute("insert into e2e_demo.order_payments (order_id, payment_sequential, payment_type, "
                     "payment_installments, payment_value) values (%s, 1, 'boleto', 1, 10.50)", (order_id,))
        conn.execute("update e2e_demo.order_payments set payment_value = 99.99, payment_installments = 3 "
                     "where order_id = %s", (order_id,))
        conn.execute("delete from e2e_demo.order_payments where order_id = %s", (order_id,))
    deadline = time.monotonic() + 60
    while topic_end(settings) < len(archived(settings)) + 4 and time.monotonic() < deadline:
        time.sleep(0.5)
    settled(settings, serving=False)  # the archive service (the demo left it running) has them
    mine = [r for r in archived(settings) if r["record_key"] and order_id in r["record_key"]]
    events = [json.loads(r["record_value"]) if r["record_value"] else None for r in mine]
    assert [e["op"] if e else None for e in events] == ["c", "u", "d", None]
    assert events[0]["after"]["payment_value"] == 10.5
    assert (events[1]["before"]["payment_value"], events[1]["after"]["payment_value"]) == (10.5, 99.99)
    assert events[1]["after"]["payment_installments"] == 3 and events[2]["after"] is None
    assert [r["kafka_offset"] for r in mine] == sorted({r["kafka_offset"] for r in mine})


# -- one lambda system ---------------------------------------------------------------------------------


def payments_in(settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse_path)) as con:
        return con.execute(sql).fetchall()


def test_a_delete_reaches_silver_and_gold_and_bronze_keeps_it(demo, postgres):
    """A payment deleted in PostgreSQL by hand disappears from silver and gold after the next ingest + transform;
    bronze keeps its history (the delete is a version of its own), and every table reconciles."""
    from pipeline.batch.lane import ingest, transform

    _, settings = demo
    first = rows(settings, "olist_order_payments_dataset.csv")[0]  # loaded, so ingested before its delete
    order_id, seq = first["order_id"], int(first["payment_sequential"])
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute("delete from e2e_demo.order_payments where order_id = %s and payment_sequential = %s",
                     (order_id, seq))
    ingested = ingest(settings)
    assert ingested.reconciled, [(t.table, t.source_rows, t.bronze_rows) for t in ingested.tables]
    assert transform(settings, docs=False).success
    where = f"where order_id = '{order_id}' and payment_sequential = {seq}"
    assert payments_in(settings, f"select count(*) from silver.stg_olist__order_payments {where}") == [(0,)]
    assert payments_in(settings, f"select count(*) from gold.fct_payments {where}") == [(0,)]
    versions = payments_in(settings, f"select coalesce(_deleted, false) from bronze.order_payments {where} "
                                     "order by _changed_at")
    assert versions[-1] == (True,) and len(versions) >= 2, "bronze: the row's versions, then its delete"


def test_the_demo_runs_again_in_the_same_clone(demo):
    """Rerun-safe: the whole demo again on the same engines and data (the simulator's orders from the first run
    now in the warehouse): every dbt test passes, every change streams."""
    _, settings = demo
    again = run_demo(settings)
    assert again.problems == [], again.problems
    assert again.batch.transform.success and again.batch.transform.tests > 240
    assert again.stream.complete


def test_windows_hold_only_streamed_changes(demo, postgres):
    """CDC started on a loaded table: the snapshot's payments are history, counted in no window. Cassandra's
    windows count exactly the payments whose last streamed change (after the snapshot) left them in the table."""
    from pipeline.serving.windows import read_windows

    _, settings = demo
    names = stream_names()
    streamed: dict[tuple, bool] = {}
    for r in archived(settings):
        if r["record_value"] is None:
            continue
        event = json.loads(r["record_value"])
        if event["op"] == "r":
            continue
        row = event["after"] or event["before"]
        streamed[(row["order_id"], row["payment_sequential"])] = event["op"] != "d"
    with psycopg.connect(postgres.conninfo()) as conn:
        loaded = conn.execute("select count(*) from e2e_demo.order_payments").fetchone()[0]
    with engine("cassandra", settings).session(names.keyspace) as session:
        counted = sum(r["payment_count"] for r in read_windows(session, names.aggregated, 24 * 60))
    assert counted == sum(streamed.values()), "every live streamed payment counted once, nothing else"
    assert counted < loaded, "the loaded payments the snapshot read are in the table but in no window"


@pytest.fixture(scope="module")
def traded(demo):
    """25 s of simulated trading (inserts, voucher splits, updates, deletes: about 5,000 changes over three
    windows) through the whole speed lane."""
    from pipeline.speed.lane import run_stream

    _, settings = demo
    report = run_stream(settings, 200, 25, seed=23)
    assert report.complete and report.simulation.rows["delete"] and report.simulation.rows["update"]
    return report


def test_reconcile_is_equal_after_trading_and_names_an_altered_row(demo, traded):
    from pipeline.console import show_reconcile
    from pipeline.reconcile import last_report, reconcile

    _, settings = demo
    names = stream_names()
    report = reconcile(settings)
    show_reconcile(report)
    assert report.ok, report.differences[:5]
    assert report.compared[names.aggregated] >= 6 and report.compared[names.installments] >= 6
    assert last_report(settings) == report, "kept for the live view"
    with engine("cassandra", settings).session(names.keyspace) as session:
        row = session.execute(f"select * from {names.aggregated} limit 1").one()
        where = "window_date = %s and payment_type = %s and window_end = %s and window_start = %s"
        key = (row.window_date, row.payment_type, row.window_end, row.window_start)
        session.execute(f"update {names.aggregated} set payment_sum = %s where {where}",
                        (row.payment_sum + Decimal("0.01"), *key))
        try:
            altered = reconcile(settings)
        finally:
            session.execute(f"update {names.aggregated} set payment_sum = %s where {where}", (row.payment_sum, *key))
    assert not altered.ok and len(altered.differences) == 1
    diff = altered.differences[0]
    assert (diff.view, diff.key) == (names.aggregated, (row.payment_type,))
    assert diff.window_start.startswith(row.window_start.strftime("%Y-%m-%dT%H:%M:%S"))
    assert Decimal(diff.speed["payment_sum"]) - Decimal(diff.batch["payment_sum"]) == Decimal("0.01")


def test_the_live_view_merges_the_batch_view_with_the_speed_view(demo, traded):
    from pipeline.serving.live import live_windows

    _, settings = demo
    view = live_windows(settings, 60)
    assert view.error is None and view.batch_watermark is not None and view.reconciliation is not None
    layers = {r["layer"] for r in view.aggregated}
    assert layers <= {"batch", "speed"} and "batch" in layers
    assert all(r["window_end"] <= view.batch_watermark for r in view.aggregated if r["layer"] == "batch")
    assert all(r["window_end"] > view.batch_watermark for r in view.aggregated if r["layer"] == "speed")


def test_down_then_up_mid_stream_loses_repeats_and_rewrites_nothing(demo, traded, postgres):
    """`olist down` (every engine; S3 empties, so the archive goes too), changes committed while CDC is down,
    then up again: the connector resumes (no snapshot), the changes arrive as the events they were, once each;
    Cassandra's earlier windows are unchanged; the archive is rebuilt with every offset exactly once; and the
    lanes still reconcile."""
    from pipeline import platform
    from pipeline.reconcile import reconcile
    from pipeline.serving.windows import read_windows
    from pipeline.speed import cdc
    from pipeline.speed.simulate import simulate
    from tests.kafka_helpers import read_topic

    _, settings = demo
    names = stream_names()

    def windows() -> dict[tuple, dict]:
        with engine("cassandra", settings).session(names.keyspace) as session:
            return {(r["window_start"], r["payment_type"]): {k: v for k, v in r.items() if k != "updated_at"}
                    for r in read_windows(session, names.aggregated, 24 * 60)}

    before, end_before = windows(), topic_end(settings)
    platform.down(settings)
    platform.up(settings, ["postgres"])
    while_down = simulate(postgres.conninfo(), settings.pg_schema, 100, 4, seed=31)
    platform.up(settings, ["s3", "kafka", "connect", "cassandra", "flink"])
    cdc.start(settings)
    kafka = engine("kafka", settings)
    deadline = time.monotonic() + 120
    after: list = []
    while time.monotonic() < deadline:
        after = [r for r in read_topic(kafka, names.raw, start={0: end_before}) if r.value is not None]
        if len(after) >= while_down.changes:
            break
        time.sleep(1)
    events = [json.loads(r.value) for r in after]
    assert len(events) == while_down.changes, "every change made while CDC was down, once"
    assert {e["op"] for e in events} <= {"c", "u", "d"}, "resumed from the slot: no snapshot read again"
    report = reconcile(settings)  # archives (S3 was emptied), waits for Flink and the sink, compares
    assert report.ok, report.differences[:5]
    now = windows()
    assert {k: now.get(k) for k in before} == before, "the windows from before the restart are as they were"
    records = archived(settings)
    assert [r["kafka_offset"] for r in records] == list(range(topic_end(settings)))
