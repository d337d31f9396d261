"""The streaming lane end to end, held to an independent computation value for value: payment changes made in a
real PostgreSQL go through Debezium (Kafka Connect) to `olist.order_payments`, through the Flink job to the
windowed topics, and through the serving sink to Cassandra, whose rows must equal windows the test computes
itself from what it did.

* The changes: inserts; updates of value and installments, most of them committed a window or more after
  their insert (the payment's value moves to the update's window, so a window and type can lose every
  payment: its row must disappear); an insert and update of one payment in one transaction; deletes (one
  emptying its window and type, one leaving others). Every batch of changes is one transaction committed
  just after a window boundary, so the batches land in distinct windows.
* Commit times out of order: a real PostgreSQL writes commit times in commit order, so changes older than the
  newest one come from a second writer, a delayed replica, produced straight to `olist.order_payments` in
  Debezium's shape (its key, envelope and source block, tombstone after a delete): some behind the newest
  commit time by less than the watermark delay (on time), some by more (late: applied all the same, and
  reported on `olist_payments_late_events`).
* The reference: the test first checks that the raw topic holds exactly the changes made (op, key, before and
  after values, in commit order, the injected events where they were produced), takes the commit times
  (`source.ts_ms`) from it, and folds them in a few lines (each payment's current version and the window of
  its commit time; then grouped). Neither Flink's SQL nor `tests/reference/windows.py` is used to compute it.

The window is shortened to 2 s (the watermark delay stays 2 s, checkpoints every second) to keep the run short.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import random
import shutil
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import hypothesis
import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from emulation.cassandra import CassandraService
from emulation.connect import ConnectService
from emulation.deployment import deployment_of, external_engines
from emulation.kafka import KafkaService, TopicSpec
from emulation.postgres import PostgresService
from emulation.resources import engine
from pipeline import platform
from pipeline.contracts import stream_names
from pipeline.provision.cassandra import apply_schema, deployment_replication
from pipeline.serving.windows import read_windows
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.speed import cdc
from pipeline.speed.archive import RawArchiver
from pipeline.speed.services import FlinkService
from pipeline.speed.sink import run_sink
from tests.conftest import running
from tests.kafka_helpers import read_topic

pytestmark = pytest.mark.e2e

NAMES = stream_names()
DEPLOYMENT = os.environ.get("OLIST_TEST_DEPLOYMENT", "local")  # local | cluster (`nox -s cluster`)
TOPIC, LATE, (AGGREGATED, INSTALLMENTS) = NAMES.raw, NAMES.late, NAMES.windowed
WINDOW_MS, DELAY_MS = 2_000, 2_000
CENT = Decimal("0.01")

Key = tuple[str, int]
Row = tuple[str, int, Decimal]  # payment_type, payment_installments, payment_value
Change = tuple[str, Key, Row | None, Row | None]  # op, key, before, after


def key(letter: str, seq: int = 1) -> Key:
    return letter * 32, seq


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


# -- engines -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engines(request) -> Iterator[Settings]:
    """The deployment the scenario runs on, as settings naming every engine by endpoint and password (as a
    production cluster is named), with a state folder of the platform's own that holds no endpoint file of theirs:
    local emulators started for this module, or with ``OLIST_TEST_DEPLOYMENT=cluster`` the rehearsal cluster of
    `nox -s cluster` (three Kafka nodes, two Connect workers, three Cassandra nodes)."""
    if DEPLOYMENT == "cluster":
        yield request.getfixturevalue("rehearsal").deployment()
        return
    local = Settings(state_dir=PROJECT_ROOT / ".state" / f"pytest-streaming-{os.getpid()}")
    with contextlib.ExitStack() as stack:
        for service in (engine(name, local) for name in ("postgres", "kafka", "connect", "cassandra")):
            stack.enter_context(running(service))
        state = PROJECT_ROOT / ".state" / f"pytest-streaming-deployment-{os.getpid()}"
        yield deployment_of(local, state, engines=("postgres", "kafka", "connect", "cassandra"))
        shutil.rmtree(state, ignore_errors=True)
    shutil.rmtree(local.state_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def settings(engines) -> Settings:
    return engines.replace(flink={"window_seconds": WINDOW_MS / 1000, "watermark_delay_seconds": DELAY_MS / 1000,
                                  "checkpoint_interval_seconds": 1})


@pytest.fixture(scope="module")
def pg(settings) -> PostgresService:
    return engine("postgres", settings)


@pytest.fixture(scope="module")
def kafka(settings) -> KafkaService:
    return engine("kafka", settings)


@pytest.fixture(scope="module")
def connect(settings) -> ConnectService:
    return engine("connect", settings)


@pytest.fixture(scope="module")
def cassandra(settings) -> CassandraService:
    return engine("cassandra", settings)


@pytest.fixture(scope="module")
def connector(settings, pg, kafka, connect):
    cdc.start(settings)
    try:
        slot = cdc.connector_config(pg, settings)["slot.name"]
        with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
            assert wait_for(lambda: conn.execute("select active from pg_replication_slots where slot_name = %s",
                                                 (slot,)).fetchone() == (True,), 60), "the slot never got active"
        yield cdc.CONNECTOR
    finally:
        cdc.stop(settings)


@pytest.fixture(scope="module")
def flink(settings, kafka, connector):
    with running(FlinkService(settings)) as svc:
        yield svc


@pytest.fixture(scope="module")
def session(settings, cassandra):
    with cassandra.session(timeout=30) as s:
        apply_schema(s, replication=deployment_replication(settings))  # the sink does it too; here reads never race it
        yield s


@pytest.fixture(scope="module")
def sink(settings, kafka, session, flink) -> Iterator[list[BaseException]]:
    """The serving sink (`run_sink`) in a thread until the module ends; yields the errors it raised."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def run() -> None:
        try:
            run_sink(settings, stop=stop)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, name="serving-sink", daemon=True)
    thread.start()
    yield errors
    stop.set()
    thread.join(30)


# -- helpers -------------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := predicate()) and time.monotonic() < deadline:
        time.sleep(interval)
    return result


class Writer:
    """Commits batches of changes to PostgreSQL, each one transaction, and remembers every change made."""

    def __init__(self, pg: PostgresService, schema: str) -> None:
        self.conninfo, self.table = pg.conninfo(), f"{schema}.order_payments"
        self.rows: dict[Key, Row] = {}
        self.last_commit_ms = 0

    def commit(self, *changes: tuple[str, Key, Row | None]) -> list[Change]:
        """Wait for the next window boundary (plus 250 ms), then apply ``(op, key, new row)`` in one transaction."""
        after = self.last_commit_ms or int(time.time() * 1000)
        boundary = (after // WINDOW_MS + 1) * WINDOW_MS + 250
        time.sleep(max(0.0, boundary / 1000 - time.time()))
        made: list[Change] = []
        with psycopg.connect(self.conninfo) as conn:
            for op, k, new in changes:
                if op == "c":
                    conn.execute(f"insert into {self.table} (order_id, payment_sequential, payment_type, "
                                 "payment_installments, payment_value) values (%s, %s, %s, %s, %s)", (*k, *new))
                elif op == "u":
                    conn.execute(f"update {self.table} set payment_type = %s, payment_installments = %s, "
                                 "payment_value = %s where order_id = %s and payment_sequential = %s", (*new, *k))
                else:
                    conn.execute(f"delete from {self.table} where order_id = %s and payment_sequential = %s", k)
                made.append((op, k, self.rows.get(k), new))
                if new is None:
                    del self.rows[k]
                else:
                    self.rows[k] = new
        self.last_commit_ms = int(time.time() * 1000)
        return made


class RawTopic:
    """`olist.order_payments` read from the start, in order: ``(change or None for a tombstone, key, value)``."""

    def __init__(self, kafka: KafkaService) -> None:
        self.consumer = Consumer(kafka.client_config(**{"group.id": "e2e-raw", "enable.auto.commit": False,
                                                        "isolation.level": "read_committed"}))
        self.consumer.assign([TopicPartition(TOPIC, 0, 0)])
        self.records: list[tuple[dict, dict | None]] = []

    def read_until(self, count: int, timeout: float = 60) -> list[tuple[dict, dict | None]]:
        deadline = time.monotonic() + timeout
        while len(self.records) < count and time.monotonic() < deadline:
            for msg in self.consumer.consume(100, 0.3):
                if msg.error():
                    assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                    continue
                self.records.append((json.loads(msg.key()), None if msg.value() is None else json.loads(msg.value())))
        assert len(self.records) == count, f"{len(self.records)} records on {TOPIC}, expected {count}"
        return self.records

    def top(self) -> int:
        """The newest commit time on the topic so far."""
        return max(v["source"]["ts_ms"] for _, v in self.records if v is not None)


def as_change(record: tuple[dict, dict | None]) -> tuple:
    """A record as the test wrote it: ``(op, key, before, after)``, or ``("tombstone", key)``."""
    k, value = record
    kk = (k["order_id"], k["payment_sequential"])
    if value is None:
        return ("tombstone", kk)

    def row(r: dict | None) -> Row | None:
        return None if r is None else (r["payment_type"], r["payment_installments"], money(r["payment_value"]))

    r = value["after"] or value["before"]
    assert (r["order_id"], r["payment_sequential"]) == kk, "the record's key is its row's"
    return (value["op"], kk, row(value["before"]), row(value["after"]))


def expected_records(changes: list[Change]) -> list[tuple]:
    out: list[tuple] = []
    for op, k, before, after in changes:
        out.append((op, k, before, after))
        if op == "d":
            out.append(("tombstone", k))  # Debezium's tombstone after a delete
    return out


def inject(kafka: KafkaService, template: dict, events: list[tuple[str, Key, Row | None, Row | None, int]]) -> None:
    """The second writer: Debezium-shaped events ``(op, key, before, after, commit_ms)`` (and a tombstone
    after a delete), keyed like Debezium's, produced straight to the raw topic."""
    producer = Producer(kafka.client_config(**{"enable.idempotence": True}))
    for op, k, before, after, commit in events:
        key_bytes = json.dumps({"order_id": k[0], "payment_sequential": k[1]}).encode()
        producer.produce(TOPIC, key=key_bytes, value=json.dumps(envelope(template, op, k, before, after, commit)))
        if op == "d":
            producer.produce(TOPIC, key=key_bytes, value=None)
    assert producer.flush(30) == 0


def envelope(template: dict, op: str, k: Key, before: Row | None, after: Row | None, commit: int) -> dict:
    """A Debezium envelope like ``template`` (a real one from the topic) for one change committed at ``commit``."""
    def image(r: Row | None) -> dict | None:
        if r is None:
            return None
        changed = dt.datetime.fromtimestamp(commit / 1000, dt.UTC).isoformat().replace("+00:00", "Z")
        return {"order_id": k[0], "payment_sequential": k[1], "payment_type": r[0], "payment_installments": r[1],
                "payment_value": float(r[2]), "_changed_at": changed}

    source = {**template["source"], "ts_ms": commit, "snapshot": "false"}
    for unit, factor in (("ts_us", 1_000), ("ts_ns", 1_000_000)):
        if unit in source:
            source[unit] = commit * factor
    return {**template, "before": image(before), "after": image(after), "op": op, "source": source,
            "ts_ms": int(time.time() * 1000)}


# -- the independent reference -------------------------------------------------------------------


def fold(events: list[tuple[str, Key, Row | None, int]]) -> tuple[dict, dict, list]:
    """``(op, key, after, commit_ms)`` in topic order -> aggregated {(start_ms, type): (count, sum, min, max)},
    installments {(start_ms, type, installments): count} and the late events [(key, op)]."""
    current: dict[Key, tuple[int, Row]] = {}
    late, newest = [], None
    for op, k, after, commit in events:
        if newest is not None and commit < newest - DELAY_MS:  # behind the watermark when it arrives
            late.append((k, op))
        newest = commit if newest is None else max(newest, commit)
        if op == "d":
            current.pop(k, None)
        else:
            current[k] = (commit - commit % WINDOW_MS, after)
    values: dict[tuple[int, str], list[Decimal]] = defaultdict(list)
    installments: Counter = Counter()
    for start, (ptype, n, value) in current.values():
        values[start, ptype].append(value)
        installments[start, ptype, n] += 1
    aggregated = {g: (len(v), sum(v, Decimal(0)), min(v), max(v)) for g, v in values.items()}
    return aggregated, dict(installments), late


# -- what Cassandra and the late-events topic hold -----------------------------------------------


def ms(t: dt.datetime) -> int:
    return round(t.timestamp() * 1000)


def served(session) -> tuple[dict, dict]:
    """Cassandra's two tables, keyed like :func:`fold`'s output; each row checked for its window's end and day."""
    now = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    aggregated, installments = {}, {}
    for topic, out in ((AGGREGATED, aggregated), (INSTALLMENTS, installments)):
        for r in read_windows(session, topic, minutes=60, until=now):
            start = ms(r["window_start"])
            assert ms(r["window_end"]) == start + WINDOW_MS and r["window_date"] == r["window_start"].date(), r
            if topic == AGGREGATED:
                out[start, r["payment_type"]] = (r["payment_count"], r["payment_sum"], r["payment_min"],
                                                 r["payment_max"], r["payment_avg"])
            else:
                out[start, r["payment_type"], r["payment_installments"]] = r["installment_count"]
    return aggregated, installments


def differences(got: tuple[dict, dict], want: tuple[dict, dict]) -> dict[str, Any]:
    """What differs: rows missing or with other values, and rows that should have been deleted."""
    (got_agg, got_inst), (want_agg, want_inst) = got, want
    wrong = {}
    for g, (count, total, low, high) in want_agg.items():
        row = got_agg.get(g)
        if row is None or row[:4] != (count, total, low, high) or not math.isclose(row[4], float(total) / count,
                                                                                    rel_tol=1e-9):
            wrong[g] = (row, (count, total, low, high, float(total) / count))
    wrong |= {g: (got_inst.get(g), n) for g, n in want_inst.items() if got_inst.get(g) != n}
    stale = sorted({*got_agg.keys() - want_agg.keys(), *got_inst.keys() - want_inst.keys()})
    return {"wrong or missing (got, want)": wrong, "should be deleted": stale} if wrong or stale else {}


def dead_letters(kafka: KafkaService) -> dict[str, int]:
    """How many records each windowed topic's dead-letter topic holds."""
    consumer = Consumer(kafka.client_config(**{"group.id": "e2e-dlq"}))
    try:
        return {t: consumer.get_watermark_offsets(TopicPartition(t, 0), timeout=10)[1]
                for t in map(NAMES.dead_letter, NAMES.windowed)}
    finally:
        consumer.close()


def late_events(kafka: KafkaService) -> list[dict]:
    return [r.json_value() for r in read_topic(kafka, LATE)]


# -- the test ------------------------------------------------------------------------------------


def test_cassandra_holds_exactly_the_windows_of_the_changes_made(pg, kafka, settings, session, sink, flink):
    writer, raw = Writer(pg, settings.pg_schema), RawTopic(kafka)
    a, b1, b2, c, d, e = key("a"), key("b"), key("b", 2), key("c"), key("d"), key("e")
    f, g1, g2, h, i, j, k = key("f"), key("0"), key("0", 2), key("1"), key("2"), key("3"), key("4")
    z1, z2, z3 = key("7"), key("8"), key("9")  # the second writer's payments
    records: list[tuple] = []  # what the raw topic must hold, in order

    def step(*changes: tuple[str, Key, Row | None]) -> None:
        records.extend(expected_records(writer.commit(*changes)))

    def newest_commit() -> int:
        """Once everything written so far is on the topic (so its order is fixed): the newest commit time."""
        raw.read_until(len(records))
        return raw.top()

    def second_writer(*events: tuple[str, Key, Row | None, Row | None, int]) -> None:
        template = next(v for _, v in reversed(raw.records) if v is not None)
        inject(kafka, template, list(events))
        records.extend(expected_records([ev[:4] for ev in events]))

    step(("c", a, ("credit_card", 3, money("120.50"))), ("c", b1, ("boleto", 1, money("35.00"))),
         ("c", b2, ("boleto", 1, money("60.00"))), ("c", c, ("voucher", 1, money("10.00"))),
         ("c", d, ("credit_card", 1, money("80.00"))), ("c", e, ("debit_card", 1, money("55.55"))))
    step(("c", f, ("boleto", 1, money("12.34"))), ("c", g1, ("credit_card", 10, money("999.99"))),
         ("c", g2, ("voucher", 1, money("20.00"))),
         ("u", d, ("credit_card", 2, money("85.00"))))  # value and installments; moves to this window
    # c and e are alone in their window and type: their rows are in Cassandra before the next step empties them.
    newest_commit()
    first = raw.records[0][1]["source"]["ts_ms"]
    w0 = first - first % WINDOW_MS
    assert wait_for(lambda: {(w0, "voucher"), (w0, "debit_card")} <= served(session)[0].keys(), 60), sink
    step(("u", c, ("voucher", 1, money("15.00"))),  # moves away: (w0, voucher) has no payment left
         ("d", e, None),  # (w0, debit_card) has no payment left
         ("c", h, ("credit_card", 24, money("1500.00"))),
         ("c", i, ("boleto", 1, money("5.00"))), ("u", i, ("boleto", 1, money("7.50"))))  # one transaction
    top = newest_commit()
    second_writer(("c", z1, None, ("voucher", 1, money("30.00")), top - 700),  # on time (within the delay)
                  ("c", z2, None, ("credit_card", 4, money("44.00")), top - 3_500))  # late
    step(("d", b1, None),  # its window keeps b2
         ("u", g1, ("credit_card", 6, money("999.99"))),  # installments only; moves to this window
         ("c", j, ("credit_card", 2, money("49.90"))))
    top = newest_commit()
    second_writer(("c", z3, None, ("boleto", 1, money("18.00")), top - 1_200),  # on time
                  ("u", z1, ("voucher", 1, money("30.00")), ("voucher", 1, money("32.00")), top - 2_400),  # late
                  ("d", z2, ("credit_card", 4, money("44.00")), None, top - 3_000))  # late
    step(("u", a, ("credit_card", 3, money("110.00"))), ("c", k, ("not_defined", 1, money("9.99"))),
         ("d", f, None))

    # 1. The raw topic holds exactly the changes made, in commit order, the second writer's where produced.
    topic = raw.read_until(len(records))
    assert [as_change(r) for r in topic] == records
    assert not [m for m in raw.consumer.consume(10, 2) if not m.error()], f"more on {TOPIC} than the changes made"
    assert all(v["source"]["snapshot"] in ("false", None) for _, v in topic if v is not None)

    # 2. The reference, from those changes and the commit times the topic gives them.
    events = [(ch[0], ch[1], ch[3], r[1]["source"]["ts_ms"]) for r in topic if (ch := as_change(r))[0] != "tombstone"]
    want = fold(events)
    windows = {commit - commit % WINDOW_MS for *_, commit in events}
    moved = [kk for kk in (a, c, d, g1) if len({ts - ts % WINDOW_MS for _, k2, _, ts in events if k2 == kk}) > 1]
    assert len(windows) >= 5 and moved == [a, c, d, g1], "the scenario spans windows and moves payments across"
    assert (w0, "voucher") not in want[0] and (w0, "debit_card") not in want[0], "two rows must disappear"
    assert want[2] == [(z2, "c"), (z1, "u"), (z2, "d")], "late: the second writer's events beyond the delay"

    # 3. Cassandra converges to it, value for value; the rows of a window and type left empty are deleted.
    assert not sink, f"the serving sink failed: {sink}"
    if not wait_for(lambda: not differences(served(session), want[:2]), 90, 1):
        diff = differences(served(session), want[:2])
        assert not diff["wrong or missing (got, want)"], diff
        assert not diff["should be deleted"], (
            "rows of windows whose payments were all deleted or moved away are still in Cassandra "
            f"(Flink tombstones them; the sink must delete them): {diff}")
    assert not any(dead_letters(kafka).values()), f"the sink dead-lettered records: {dead_letters(kafka)}"

    # 4. The late events are reported on their topic, each once, in arrival order.
    def reported() -> list:
        return [((ev["order_id"], ev["payment_sequential"]), ev["op"]) for ev in late_events(kafka)]

    wait_for(lambda: len(reported()) >= len(want[2]), 30, 1)
    assert reported() == want[2]


# -- bad events: fuzzed straight onto the raw topic ------------------------------------------------

FUZZ_EXAMPLES = int(os.environ.get("OLIST_FUZZ_EVENT_EXAMPLES", "3"))
BAD_OFFSETS: dict[int, str] = {}  # offset on the raw topic: what was wrong with the record produced there


def bad_record(kind: str, template: dict, seed: int) -> bytes:
    """A record breaking the topic's contract in one way that every reader of the raw topic refuses (the archive
    by its JSON Schema, the Flink job and the batch recompute by the row rules generated from the contract).
    Left out on purpose: numbers sent as JSON strings and fractional commit times, which Flink's JSON format and
    DuckDB coerce (each the same way) but the JSON Schema refuses."""
    rng = random.Random(seed)
    commit = int(time.time() * 1000)
    good = envelope(template, "c", (f"{rng.getrandbits(128):032x}", 1), None,
                    ("credit_card", 1 + rng.randrange(24), money(rng.randrange(1, 100_000) / 100)), commit)
    after, missing = good["after"], rng.choice(["order_id", "payment_sequential"])
    broken: dict[str, Callable[[], Any]] = {
        "not JSON": lambda: json.dumps(good)[: rng.randrange(1, 60)],
        "not an object": lambda: rng.choice([[1, 2], "payment", 42, None, True]),
        "unknown op": lambda: {**good, "op": rng.choice(["x", "", "C", "insert", 1])},
        "no op": lambda: {k: v for k, v in good.items() if k != "op"},
        "insert without after": lambda: {**good, "after": None},
        "after not an object": lambda: {**good, "after": rng.choice(["row", 7, [after]])},
        "no key": lambda: {**good, "after": {k: v for k, v in after.items() if k != missing}},
        "payment type outside the enum": lambda: {**good, "after": {**after, "payment_type": rng.choice(
            ["pix", "CREDIT_CARD", "", "credit card"])}},
        "installments out of range": lambda: {**good, "after": {**after, "payment_installments": rng.choice(
            [25, -1, 10**12])}},
        "fractional installments": lambda: {**good, "after": {**after, "payment_installments": 2.5}},
        "sequential out of range": lambda: {**good, "after": {**after, "payment_sequential": rng.choice([0, 100])}},
        "negative value": lambda: {**good, "after": {**after, "payment_value": -0.01}},
        "value not a number": lambda: {**good, "after": {**after, "payment_value": rng.choice(["abc", "", None])}},
        "value too large": lambda: {**good, "after": {**after, "payment_value": 1e15}},
        "order id breaks its pattern": lambda: {**good, "after": {**after, "order_id": rng.choice(
            ["Z" * 32, "a" * 31, "a" * 33, "A" * 32])}},
        "no commit time": lambda: {**good, "source": {k: v for k, v in good["source"].items() if k != "ts_ms"}},
        "huge value": lambda: {**good, "after": {**after, "payment_type": "x" * 900_000}},
        "wrong types": lambda: {**good, "after": {**after, "payment_type": rng.choice([5, ["boleto"], {}])}},
    }
    value = broken[kind]()
    return value.encode() if isinstance(value, str) and kind == "not JSON" else json.dumps(value).encode()


BAD_KINDS = ("not JSON", "not an object", "unknown op", "no op", "insert without after", "after not an object",
             "no key", "payment type outside the enum", "installments out of range", "fractional installments",
             "sequential out of range", "negative value", "value not a number", "value too large",
             "order id breaks its pattern", "no commit time", "huge value", "wrong types")


def good_records_on_the_topic(kafka: KafkaService) -> list[tuple]:
    """Every record of the raw topic but the bad ones this module produced, as ``(op, key, after, commit)``."""
    events = []
    for r in read_topic(kafka, TOPIC, timeout=60):
        if r.offset in BAD_OFFSETS or r.value is None:
            continue
        change = as_change((json.loads(r.key), json.loads(r.value)))
        events.append((change[0], change[1], change[3], json.loads(r.value)["source"]["ts_ms"]))
    return events


def job_restarts(flink: FlinkService, jid: str) -> int:
    metrics = flink._rest(f"/jobs/{jid}/metrics?get=numRestarts") or []
    return int(next((m["value"] for m in metrics if m["id"] == "numRestarts"), 0))


@hypothesis.settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(batch=st.lists(st.one_of(st.tuples(st.just("bad"), st.sampled_from(BAD_KINDS), st.integers(0, 2**32)),
                                st.tuples(st.just("good"), st.sampled_from(["c", "cu", "cd"]), st.integers(0, 2**32))),
                      min_size=4, max_size=24))
def test_bad_events_never_stop_the_lane_and_good_ones_count_once(kafka, session, sink, flink, batch):
    """A batch of records produced straight to the raw topic, good changes between bad ones: the Flink job keeps
    running (same job, no restart), the sink too (nothing dead-lettered downstream), and Cassandra equals the
    fold of every good record on the topic, each once."""
    jid = flink.running_job()["jid"]
    restarts = job_restarts(flink, jid)
    template = next(json.loads(r.value) for r in read_topic(kafka, TOPIC, timeout=30) if r.value is not None
                    and r.offset not in BAD_OFFSETS)
    producer = Producer(kafka.client_config(**{"enable.idempotence": True, "message.max.bytes": 2_000_000}))
    produced: list[tuple[str, Any]] = []

    def delivered(kind: str) -> Callable:
        def report(err, msg) -> None:
            assert err is None, err
            produced.append((kind, msg.offset()))
        return report

    for what, detail, seed in batch:
        if what == "bad":
            producer.produce(TOPIC, key=b'{"fuzz": true}', value=bad_record(detail, template, seed),
                             on_delivery=delivered(detail))
            continue
        rng, commit = random.Random(seed), int(time.time() * 1000)
        k = (f"{rng.getrandbits(128):032x}", 1)
        row = (rng.choice(["credit_card", "boleto", "voucher", "debit_card"]), 1 + rng.randrange(24),
               money(rng.randrange(1, 100_000) / 100))
        key_bytes = json.dumps({"order_id": k[0], "payment_sequential": k[1]}).encode()
        changes = [("c", None, row)]
        if detail == "cu":
            changes.append(("u", row, (row[0], row[1], money(row[2] + 1))))
        elif detail == "cd":
            changes.append(("d", row, None))
        for op, before, after in changes:
            producer.produce(TOPIC, key=key_bytes, value=json.dumps(envelope(template, op, k, before, after, commit)),
                             on_delivery=delivered("good"))
            if op == "d":
                producer.produce(TOPIC, key=key_bytes, value=None, on_delivery=delivered("good"))
    assert producer.flush(30) == 0
    BAD_OFFSETS.update({offset: kind for kind, offset in produced if kind != "good"})

    aggregated, installments, _ = fold(good_records_on_the_topic(kafka))
    assert wait_for(lambda: not differences(served(session), (aggregated, installments)), 60, 1), (
        differences(served(session), (aggregated, installments)))
    assert flink.running_job()["jid"] == jid and job_restarts(flink, jid) == restarts, "the Flink job restarted"
    assert not sink, f"the serving sink failed: {sink}"
    assert not any(dead_letters(kafka).values()), f"bad events reached the sink: {dead_letters(kafka)}"


def test_the_archive_dead_letters_every_bad_event_with_its_reason_and_offset(kafka, s3_location):
    """The raw archive over the whole topic: every offset archived once, and exactly the bad records on the
    dead-letter topic, each with a reason and the offset it came from."""
    assert BAD_OFFSETS, "the fuzz test above produced no bad record (run the module whole)"
    prefix, dlq = f"raw-fuzz-{uuid.uuid4().hex[:6]}", f"dlq-fuzz-{uuid.uuid4().hex[:6]}"
    kafka.create_topics([TopicSpec(dlq)])
    report = RawArchiver(kafka.client_config(), s3_location, TOPIC, prefix, group=f"g-{prefix}",
                         dead_letter=dlq).run(until_idle=5)
    # every record: with exactly-once CDC (the cluster's) transaction markers take offsets too, and hold no record
    records = len(read_topic(kafka, TOPIC))
    assert report.records == records and report.dead_lettered == len(BAD_OFFSETS)
    letters = {int(r.headers["olist.source"].rsplit("/", 1)[1]): r.headers
               for r in read_topic(kafka, dlq, isolation="read_uncommitted")}
    assert letters.keys() == BAD_OFFSETS.keys(), {o: BAD_OFFSETS.get(o) for o in letters.keys() ^ BAD_OFFSETS.keys()}
    assert all(h["olist.reason"] and h["olist.source"] == f"{TOPIC}/0/{o}" for o, h in letters.items())
    huge = [o for o, kind in BAD_OFFSETS.items() if kind == "huge value"]
    assert all("olist.value-omitted" in letters[o] or len(letters[o]["olist.reason"]) <= 2000 for o in huge)


def test_the_lane_ran_on_engines_named_by_settings_alone(settings, pg, kafka, connect, cassandra, sink, flink):
    """Every engine the scenario used was reached through the deployment's settings: the platform's state folder
    holds no endpoint or pid file of theirs, `status` shows them external and healthy, and `down --purge` leaves
    them running while it stops what is the platform's own (the Flink job)."""
    external = ["postgres", "kafka", "connect", "cassandra"]
    assert set(external) <= set(external_engines(settings))
    assert not [name for name in external if (settings.state_dir / name).exists()]
    report = platform.status(settings)
    statuses = {status.name: status for status, _ in report.services}
    assert all(statuses[n].healthy and statuses[n].pid is None and "external" in statuses[n].detail
               for n in external), {n: statuses[n] for n in external}
    assert report.connector["connector"]["state"] == "RUNNING" and report.flink_job["state"] == "RUNNING"
    down = platform.down(settings, purge=True)
    assert set(external) <= set(down.external) and "flink" in down.stopped  # the cluster's S3 is named too
    assert flink.pid() is None, "the Flink job is the platform's own: stopped"
    assert all(service.health() for service in (pg, kafka, connect, cassandra)), "an engine of the deployment stopped"
