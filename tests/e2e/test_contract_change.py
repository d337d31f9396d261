"""Change as the everyday path, rehearsed end to end under traffic, as a user of a clone of this project makes it.

The previous release (the commit on main before the convergence work, built from a git worktree) runs the demo and
leaves a platform with data in every engine. This release, in a clone of the working tree, brings that state to its
own by `olist plan` / `olist apply`. Then, each with the simulator trading while `olist apply` runs:

(a) an optional column of ``order_payments`` flows PostgreSQL -> Debezium -> the raw topic (its JSON Schema one minor
    version up) -> the raw archive -> bronze (older Parquet files lack it) -> silver;
(b) a new means of payment, ``pix``, which the simulator then uses: the loader takes it, the Flink windows and
    Cassandra carry it, the batch recompute and `olist reconcile` agree;
(c) a tenth source table's contract: created, loaded, ingested and staged;
(d) a breaking change: refused by `plan` and `apply` with exit 1, changing nothing.

After each: PostgreSQL, the raw topic, the archive and Cassandra's windows equal an independent fold of the topic's
events written here; `olist reconcile` is equal; no engine was restarted. Every `olist` command runs as a user
would run it, in its own process, from the release's own folder (``python -m pipeline.cli``)."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import duckdb
import jsonschema
import psycopg
import pyarrow.parquet as pq
import pytest

from emulation.resources import engine
from pipeline import platform
from pipeline.batch.ingest.manifest import committed_files, manifests
from pipeline.contracts import stream_names
from pipeline.lake import ArchiveLayout
from pipeline.reconcile import ReconcileReport, last_report_path
from pipeline.serving.windows import table_of
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.storage import s3_location
from tests.contract_edits import edit_contract, prop
from tests.kafka_helpers import read_topic

pytestmark = pytest.mark.e2e

PREVIOUS_RELEASE = "5375954"  # main before the convergence work (#27): the release this one upgrades
ENGINES = ("postgres", "s3", "kafka", "connect", "cassandra")
NAMES = stream_names()
CENT = Decimal("0.01")
TRANSCRIPT = PROJECT_ROOT / ".state" / "contract-change-transcript.md"  # the commands and what they printed


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    code: int
    output: str
    seconds: float


@dataclass
class Release:
    """One release of the project in a folder of its own, its `olist` run as a user runs it."""

    root: Path
    env: dict[str, str]
    runs: list[Run] = field(default_factory=list)

    def olist(self, *args: str, expect: int = 0, timeout: float = 900) -> Run:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        run = Run(args, proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - started)
        self.runs.append(run)
        with TRANSCRIPT.open("a", encoding="utf-8") as fh:
            fh.write(f"\n$ olist {' '.join(args)}   # {self.root.name}, exit {run.code}, {run.seconds:.1f} s\n"
                     f"{run.output}\n")
        assert run.code == expect, f"olist {' '.join(args)}: exit {run.code}, not {expect}\n{run.output[-4000:]}"
        return run

    def simulate(self, rate: float, seconds: float, seed: int) -> subprocess.Popen:
        """The simulator trading in the background (its own process), as the application would."""
        return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "simulate", "--rate", str(rate), "--duration",
                                 str(seconds), "--seed", str(seed)], cwd=self.root, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def release_env(root: Path, state: Path, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLIST_PG_SCHEMA", "OLIST_BRONZE"))}
    return env | {"PYTHONPATH": str(root), "OLIST_STATE_DIR": str(state), "OLIST_DATA_DIR": str(data),
                  "OLIST_SCALE": "0.01", "OLIST_STREAM_SECONDS": "6", "OLIST_STREAM_RATE": "100",
                  "COLUMNS": "200", "NO_COLOR": "1"}


@dataclass
class World:
    old: Release
    new: Release
    settings: Settings
    applied: dict[str, Run] = field(default_factory=dict)  # change -> its `olist apply`


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("change")
    state, data = PROJECT_ROOT / ".state" / f"pytest-change-{os.getpid()}", base / "data"
    old, new = base / "previous", base / "clone"
    subprocess.run(["git", "worktree", "add", "--detach", str(old), PREVIOUS_RELEASE], cwd=PROJECT_ROOT, check=True,
                   capture_output=True)
    listed = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]  # what a commit of it holds
    tracked = subprocess.run(listed, cwd=PROJECT_ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, tracked):  # this release as the working tree has it (a user's clone)
        if (PROJECT_ROOT / rel).is_file():
            (new / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / rel, new / rel)
    TRANSCRIPT.parent.mkdir(parents=True, exist_ok=True)
    TRANSCRIPT.write_text(f"# Contract change rehearsal, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n")
    world = World(Release(old, release_env(old, state, data)), Release(new, release_env(new, state, data)),
                  Settings(state_dir=state, data_dir=data, scale=0.01))
    try:
        yield world
    finally:
        subprocess.run([sys.executable, "-m", "pipeline.cli", "down", "--purge"], cwd=new, env=world.new.env,
                       capture_output=True, timeout=600)
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=PROJECT_ROOT, capture_output=True)
        shutil.rmtree(state, ignore_errors=True)


# -- the user's edits ----------------------------------------------------------------------------


def insert_after(path: Path, anchor: str, text: str) -> None:
    body = path.read_text()
    assert anchor in body, f"{path}: no {anchor!r}"
    path.write_text(body.replace(anchor, anchor + text, 1))


# -- what the engines hold -----------------------------------------------------------------------


def engine_pids(settings: Settings) -> dict[str, int | None]:
    return {name: platform.get_service(name, settings).pid() for name in ENGINES}


def events(settings: Settings) -> list[tuple[int, dict | None]]:
    """The raw topic's records: (offset, value) in offset order."""
    return [(r.offset, r.json_value()) for r in read_topic(engine("kafka", settings), NAMES.raw)]


def query(settings: Settings, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(engine("postgres", settings).conninfo()) as conn:
        return [tuple(r) for r in conn.execute(sql, params)]


def table_rows(settings: Settings, table: str, columns: str) -> set[tuple]:
    return set(query(settings, f"select {columns} from {settings.pg_schema}.{table}"))


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def fold(records: list[tuple[int, dict | None]]) -> tuple[dict[tuple, dict], dict[tuple, tuple[int, Decimal]], int]:
    """The independent fold of the raw topic: each payment's current row (what PostgreSQL must hold), the aggregated
    windows (each payment counted once, in the window of its last streamed change's commit time, with that change's
    value; a payment the snapshot alone saw, or deleted, counts nowhere) and the newest commit time."""
    rows: dict[tuple, dict] = {}
    last: dict[tuple, dict] = {}
    newest = 0
    for _, event in records:
        if event is None:
            continue  # a delete's tombstone
        row = event["after"] or event["before"]
        key = (row["order_id"], int(row["payment_sequential"]))
        if event["op"] == "d":
            rows.pop(key, None)
        else:
            rows[key] = event["after"]
        last[key] = event
        newest = max(newest, event["source"]["ts_ms"])
    window_ms = int(Settings().flink.window_seconds * 1000)
    windows: dict[tuple, tuple[int, Decimal]] = {}
    for event in last.values():
        if event["op"] in ("r", "d"):
            continue
        start = event["source"]["ts_ms"] // window_ms * window_ms
        key = (dt.datetime.fromtimestamp(start / 1000, dt.UTC), event["after"]["payment_type"])
        count, total = windows.get(key, (0, Decimal(0)))
        windows[key] = (count + 1, total + money(event["after"]["payment_value"]))
    return rows, windows, newest


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 2) -> object:
    deadline = time.monotonic() + timeout
    while not (result := predicate()) and time.monotonic() < deadline:
        time.sleep(interval)
    return result


def assert_nothing_lost_or_duplicated(settings: Settings) -> dict[str, int]:
    """PostgreSQL, the raw topic, the archive and Cassandra, each against the fold of the topic's events."""
    payments = "order_id, payment_sequential, payment_type, payment_installments, payment_value"

    def pg_equals_topic() -> bool:
        rows, _, _ = fold(events(settings))
        in_topic = {(k[0], k[1], r["payment_type"], r["payment_installments"], money(r["payment_value"]))
                    for k, r in rows.items()}
        in_pg = {(o, s, t, i, money(v)) for o, s, t, i, v in table_rows(settings, "order_payments", payments)}
        return in_topic == in_pg

    assert wait_for(pg_equals_topic, 120), "PostgreSQL's order_payments == the fold of the raw topic"
    records = events(settings)
    assert [o for o, _ in records] == list(range(len(records))), "the topic: every offset once"
    layout = ArchiveLayout(s3_location(settings), settings.raw_prefix, NAMES.raw)

    def archived() -> list[tuple[int, dict | None]]:
        table = layout.read().to_pylist()
        return [(r["kafka_offset"], None if r["record_value"] is None
                 else json.loads(r["record_value"], parse_float=Decimal)) for r in table]

    assert wait_for(lambda: len(archived()) >= len(records), 120), "the archive caught up with the topic"
    assert archived()[:len(records)] == records, "the archive: every offset once, each the topic's event"
    _, windows, newest = fold(records)
    closed_before = dt.datetime.fromtimestamp((newest - Settings().flink.watermark_delay_seconds * 1000) / 1000,
                                              dt.UTC)
    window = dt.timedelta(seconds=Settings().flink.window_seconds)
    expected = {k: v for k, v in windows.items() if k[0] + window <= closed_before}

    def served() -> dict[tuple, tuple[int, Decimal]]:
        return {(start, kind): (count, total) for start, end, kind, count, total in windows_in_cassandra(settings)
                if end <= closed_before}

    assert wait_for(lambda: served() == expected, 180), \
        f"Cassandra's closed windows == the fold: {sorted(set(served().items()) ^ set(expected.items()))[:6]}"
    return {"payments": len(fold(records)[0]), "events": len(records), "windows": len(expected)}


def windows_in_cassandra(settings: Settings) -> list[tuple]:
    """Every aggregated window Cassandra holds, read whole with plain CQL (the platform's reader enumerates the
    partitions by the payment types of the contracts it was started with: here, this process's)."""
    with engine("cassandra", settings).session(NAMES.keyspace) as session:
        rows = session.execute(f"select window_start, window_end, payment_type, payment_count, payment_sum "
                               f"from {table_of(NAMES.aggregated).name}")
        return [(r.window_start.replace(tzinfo=dt.UTC), r.window_end.replace(tzinfo=dt.UTC), r.payment_type,
                 r.payment_count, r.payment_sum) for r in rows]


def reconciled(world: World) -> ReconcileReport:
    world.new.olist("reconcile")
    report = ReconcileReport.from_json(last_report_path(world.settings).read_text())
    assert report.ok and not report.differences and sum(report.compared.values()) > 0
    return report


@contextlib.contextmanager
def trading(world: World, change: str, rate: float = 40, seed: int = 1) -> Iterator[subprocess.Popen]:
    """The simulator trading (its own process, started before the contracts are edited, as the application runs
    while its platform changes) around an `olist apply`; after it, no engine has another process."""
    before = engine_pids(world.settings)
    assert all(before.values()), before
    sim = world.new.simulate(rate, 3600, seed)
    try:
        time.sleep(4)
        assert sim.poll() is None, sim.stderr.read() if sim.stderr else ""
        yield sim
        assert change in world.applied, "the block ran `olist apply`"
        assert sim.poll() is None, "the simulator traded all through the apply"
        time.sleep(3)  # and after it, on the new version
    finally:
        sim.send_signal(signal.SIGINT)
        _, err = sim.communicate(timeout=60)
    assert "Traceback" not in (err or ""), err
    assert engine_pids(world.settings) == before, "no engine was restarted"


def apply(world: World, change: str, *args: str) -> Run:
    run = world.applied[change] = world.new.olist("apply", *args)
    return run


# -- the scenario --------------------------------------------------------------------------------


def test_the_previous_release_runs_the_demo(world):
    world.old.olist("demo", timeout=1200)
    assert engine_pids(world.settings)["kafka"], "the previous release left its platform running"


def test_apply_upgrades_the_previous_release_state_with_the_data_kept(world):
    settings = world.settings
    tables = ("customers", "orders", "order_items", "order_payments", "products", "sellers")
    counts = {t: len(table_rows(settings, t, "*")) for t in tables}
    records = events(settings)
    before = assert_nothing_lost_or_duplicated(settings)
    world.new.olist("plan")  # exit 0: nothing breaking
    world.applied["upgrade"] = world.new.olist("apply", "--recompute")
    world.new.olist("up")
    assert {t: len(table_rows(settings, t, "*")) for t in tables} == counts, "every row kept"
    assert events(settings)[:len(records)] == records, "every event kept"
    assert assert_nothing_lost_or_duplicated(settings) == before
    reconciled(world)
    assert "nothing to do" in world.new.olist("plan").output, "converged"


def test_a_an_optional_column_flows_to_silver(world):
    new, settings = world.new, world.settings
    channel = {"name": "payment_channel", "description": "Where the payment was made (app, web, store).",
               "logicalType": "string", "physicalType": "varchar(16)", "required": False}
    with trading(world, "a", seed=11):
        payments = new.root / "contracts/olist/order_payments.odcs.yaml"
        edit_contract(payments, lambda obj: obj["properties"].append(channel))
        edit_contract(new.root / "contracts/topics/olist.order_payments.odcs.yaml", lambda obj: None)
        insert_after(new.root / "dbt/models/staging/stg_olist__order_payments.sql",
                     "cast(payment_value as decimal(12, 2)) as payment_value", ",\n        payment_channel")
        cdc_model = new.root / "dbt/models/staging/stg_cdc__order_payments.sql"
        insert_after(cdc_model, "'decimal(12, 2)') }} as payment_value,",
                     "\n        {{ json_text('record_value', 'after.payment_channel') }} as payment_channel,")
        cdc_model.write_text(cdc_model.read_text().replace("        payment_value,\n        commit_ms\n    from valid",
                                                           "        payment_value,\n        payment_channel,\n"
                                                           "        commit_ms\n    from valid"))
        new.olist("contracts", "generate")
        new.olist("contracts", "lint")
        plan = new.olist("plan")
        assert "add column payment_channel varchar(16)" in plan.output
        apply(world, "a")
    tagged = sorted(table_rows(settings, "order_payments", "order_id, payment_sequential"))[:5]
    with psycopg.connect(engine("postgres", settings).conninfo(), autocommit=True) as conn:
        for order_id, seq in tagged:  # the application now writes the column
            conn.execute(f"update {settings.pg_schema}.order_payments set payment_channel = 'app' "
                         "where order_id = %s and payment_sequential = %s", (order_id, seq))
    schema = json.loads((new.root / "contracts/generated/jsonschema/olist.order_payments.schema.json").read_text())
    assert schema["$id"].endswith(":1.2.0"), "the raw topic's JSON Schema is one minor version up"
    validator = jsonschema.Draft202012Validator(schema)

    def channelled() -> list[dict]:
        return [e for _, e in events(settings) if e and (e["after"] or {}).get("payment_channel") == "app"]

    assert wait_for(lambda: len(channelled()) == len(tagged), 60), "every tagged change reached the raw topic"
    recent = [e for _, e in events(settings) if e][-200:]
    assert all(validator.is_valid(e) for e in recent), "events with and without the column are valid"
    assert any("payment_channel" not in (e["after"] or e["before"]) for _, e in events(settings)[:50] if e)
    reconciled(world)
    assert_nothing_lost_or_duplicated(settings)
    new.olist("ingest")
    new.olist("transform")
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        silver = set(con.execute("select order_id, payment_sequential from silver.stg_olist__order_payments "
                                 "where payment_channel = 'app'").fetchall())
        assert silver == set(tagged), "ingested from PostgreSQL, bronze to silver"
        streamed = con.execute("select count(distinct order_id || payment_sequential) from "
                               "silver.stg_cdc__order_payments where payment_channel = 'app'").fetchone()[0]
        assert streamed == len(tagged), "archived from the topic, bronze to silver"
        older = con.execute("select count(*) from bronze.order_payments where payment_channel is null").fetchone()[0]
    loc = s3_location(settings)
    fs = loc.arrow_fs()
    files = committed_files(manifests(loc, fs, settings.bronze_prefix, "order_payments"))
    having = [("payment_channel" in pq.read_schema(f.path, filesystem=fs).names) for f in files]
    assert False in having and True in having, "bronze holds files from before the column and after it"
    assert older >= sum(f.rows for f, has in zip(files, having, strict=True) if not has), \
        "the rows of the files that predate the column are read, as null"


def test_b_a_new_payment_type_the_simulator_uses(world):
    new, settings = world.new, world.settings

    def add_pix(obj: dict) -> None:
        prop(obj["properties"], "payment_type")["enum"].append({"value": "pix"})

    with trading(world, "b", seed=12):
        edit_contract(new.root / "contracts/olist/order_payments.odcs.yaml", add_pix)
        for topic in ("olist_payments_aggregated_windowed", "olist_payments_installments_windowed",
                      "olist_payments_late_events"):
            edit_contract(new.root / f"contracts/topics/{topic}.odcs.yaml", add_pix)
        edit_contract(new.root / "contracts/topics/olist.order_payments.odcs.yaml", lambda obj: None)
        new.olist("contracts", "generate")
        new.olist("contracts", "lint")
        plan = new.olist("plan")
        assert "pix" in plan.output and "replay" in plan.output, "the CHECK widens; the Flink job's plan changed"
        apply(world, "b", "--recompute")
    sim = new.simulate(60, 20, 13)  # the application, redeployed on the new contract, uses pix
    _, err = sim.communicate(timeout=300)
    assert sim.returncode == 0, err
    data = settings.data_dir / "olist_order_payments_dataset.csv"
    with data.open(encoding="utf-8", newline="") as fh:
        payments = list(csv.DictReader(fh))
    order = payments[0]["order_id"]
    seq = 1 + max(int(p["payment_sequential"]) for p in payments if p["order_id"] == order)
    with data.open("a", encoding="utf-8", newline="") as fh:
        fh.write(f"{order},{seq},pix,1,12.34\n")
    new.olist("load")  # exit 0: nothing quarantined
    assert ("pix", Decimal("12.34")) in {(t, v) for o, s, t, v in table_rows(
        settings, "order_payments", "order_id, payment_sequential, payment_type, payment_value") if o == order}
    report = reconciled(world)
    assert report.compared[NAMES.aggregated] > 0
    counts = assert_nothing_lost_or_duplicated(settings)
    assert counts["windows"] > 0
    assert any(kind == "pix" for _, _, kind, _, _ in windows_in_cassandra(settings)), "Cassandra carries pix"
    new.olist("ingest")
    new.olist("transform")
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        mix = dict(con.execute("select payment_type, sum(payments) from gold.mart_payment_mix group by 1").fetchall())
    pix = table_rows(settings, "order_payments", "order_id, payment_sequential, payment_type")
    assert mix.get("pix") == sum(t == "pix" for *_, t in pix), "the batch layer counts every pix payment"


LEADS = """\
apiVersion: v3.2.0
kind: DataContract
id: olist.marketing_qualified_leads
name: marketing_qualified_leads
version: 1.0.0
status: active
domain: olist
dataProduct: olist_ecommerce
tags: [olist, source, batch]
description:
  purpose: Marketing qualified leads, the sellers who asked to join Olist (the marketing funnel data set).
  usage: One row per lead; its landing page and origin channel.
  limitations: The origin is unknown for some leads.
schema:
  - name: marketing_qualified_leads
    physicalName: marketing_qualified_leads
    physicalType: table
    logicalType: object
    description: One row per marketing qualified lead.
    customProperties:
      - {property: sourceFile, value: olist_marketing_qualified_leads_dataset.csv}
      - {property: csvFormat, value: {lineTerminator: lf, byteOrderMark: false, quoteHeader: false, quote: minimal}}
      - {property: changeDetection, value: timestamp}
    quality:
      - {metric: rowCount, mustBeGreaterThan: 0, dimension: completeness}
    properties:
      - name: mql_id
        description: Key of the lead.
        logicalType: string
        physicalType: varchar(32)
        logicalTypeOptions: {pattern: '^[0-9a-f]{32}$'}
        required: true
        primaryKey: true
        primaryKeyPosition: 1
        unique: true
      - name: first_contact_date
        description: The day of the lead's first contact.
        logicalType: date
        physicalType: date
        required: true
      - name: landing_page_id
        description: The landing page the lead came through.
        logicalType: string
        physicalType: varchar(32)
        logicalTypeOptions: {pattern: '^[0-9a-f]{32}$'}
        required: true
      - name: origin
        description: The marketing channel the lead came from.
        logicalType: string
        physicalType: varchar(32)
        required: false
"""

STAGED_LEADS = """\
with

source as (
    {{ latest_version(source('bronze', 'marketing_qualified_leads'), ['mql_id']) }}
),

renamed as (
    select
        -- ids
        mql_id,
        landing_page_id,
        -- the lead
        first_contact_date,
        coalesce(origin, 'unknown') as origin
    from source
)

select * from renamed
"""


def test_c_a_tenth_source_table(world):
    new, settings = world.new, world.settings
    (new.root / "contracts/olist/marketing_qualified_leads.odcs.yaml").write_text(LEADS)
    (new.root / "dbt/models/staging/stg_olist__marketing_qualified_leads.sql").write_text(STAGED_LEADS)
    origins = ["organic_search", "paid_search", ""]  # "": not known
    leads = [(f"{i:032x}", f"2018-0{1 + i % 6}-1{i % 10}", f"{i * 7919:032x}", origins[i % 3]) for i in range(1, 41)]
    with (settings.data_dir / "olist_marketing_qualified_leads_dataset.csv").open("w", encoding="utf-8") as fh:
        fh.write("mql_id,first_contact_date,landing_page_id,origin\n")
        fh.writelines(",".join(lead) + "\n" for lead in leads)
    with trading(world, "c", seed=14):
        new.olist("contracts", "generate")
        new.olist("contracts", "lint")
        assert "marketing_qualified_leads" in (new.root / "contracts/generated/snowflake/bronze.sql").read_text()
        plan = new.olist("plan")
        assert "marketing_qualified_leads" in plan.output
        apply(world, "c")
    new.olist("load")
    assert len(table_rows(settings, "marketing_qualified_leads", "*")) == len(leads)
    new.olist("ingest")
    new.olist("transform")
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        staged = con.execute("select mql_id, cast(first_contact_date as varchar), landing_page_id, origin "
                             "from silver.stg_olist__marketing_qualified_leads").fetchall()
    assert sorted(staged) == sorted((m, d, p, o or "unknown") for m, d, p, o in leads)
    reconciled(world)
    assert_nothing_lost_or_duplicated(settings)


def test_d_a_breaking_change_is_refused_and_changes_nothing(world):
    new, settings = world.new, world.settings
    path = new.root / "contracts/olist/order_payments.odcs.yaml"
    kept = path.read_text()
    shape = ("select column_name, data_type, character_maximum_length from information_schema.columns "
             "where table_schema = %s and table_name = 'order_payments' order by 1")
    before = query(settings, shape, (settings.pg_schema,))

    def narrow(obj: dict) -> None:
        obj["properties"].remove(prop(obj["properties"], "payment_channel"))  # a removed column: breaking

    edit_contract(path, narrow)
    new.olist("contracts", "generate")
    plan = new.olist("plan", expect=1)
    assert "breaking" in plan.output.lower() and "payment_channel" in plan.output
    new.olist("apply", expect=1)
    assert query(settings, shape, (settings.pg_schema,)) == before, "nothing changed"
    path.write_text(kept)
    new.olist("contracts", "generate")
    assert "nothing to do" in new.olist("plan").output
