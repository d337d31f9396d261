"""The Flink job (flink/payments_windows.py, PyFlink 2.2 on a local mini-cluster) on a real Kafka broker, held to
the pure-Python reference (tests/reference/windows.py) value for value: inserts, updates that move a payment to
another window, deletes with tombstones, redelivered events, commit times out of order within the watermark
delay and beyond it (late: applied all the same, and reported)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import itertools
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulation.flink import JOB, ensure_venv, job_arguments, write_kafka_properties
from emulation.jvm import fetch
from emulation.kafka import KafkaService, TopicSpec
from emulation.resources import engine
from pipeline import provision
from pipeline.contracts import stream_names
from pipeline.speed.cdc import topic_specs
from pipeline.speed.services import FlinkService
from tests.conftest import kill_tree, running
from tests.kafka_helpers import read_topic as read_records
from tests.reference.windows import Windows, compute

pytestmark = pytest.mark.integration
T0 = int(dt.datetime(2026, 11, 27, 18, 0, tzinfo=dt.UTC).timestamp() * 1000)  # a window boundary
TYPES = ["credit_card", "boleto", "voucher", "debit_card"]
NAMES = stream_names()
SINKS = list(NAMES.served)


@pytest.fixture(scope="module")
def kafka(test_settings) -> Iterator[KafkaService]:
    with running(
        engine("kafka", test_settings.replace(state_dir=test_settings.state_dir / f"flink-k{os.getpid()}"))
    ) as svc:
        yield svc


@pytest.fixture(scope="module")
def flink_python():
    """The Flink venv (created on first use: ~850 MB of wheels, cached) and the Kafka connector jar."""
    jar = next(fetch().lib("flink").glob("flink-sql-connector-kafka-*.jar"))
    return ensure_venv(), jar


MINI_BATCH_MS = [500, 0]


@pytest.fixture(scope="module")
def plans(flink_python, test_settings) -> dict[int, str]:
    """The job's optimised plan for each mini-batch setting, explained in one JVM (no broker needed)."""
    python, jar = flink_python
    argvs = [[*job_arguments(test_settings.flink.model_copy(update={"mini_batch_latency_ms": ms})),
              "--bootstrap", "127.0.0.1:9", "--connector-jar", str(jar)] for ms in MINI_BATCH_MS]
    proc = subprocess.run([str(python), str(Path(__file__).parents[1] / "fixtures" / "flink_plans.py"), str(JOB)],
                          input=json.dumps(argvs), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    parts = re.split(r"^PLAN \d+\n", proc.stdout, flags=re.MULTILINE)[1:]
    assert len(parts) == len(MINI_BATCH_MS), proc.stdout[-2000:]
    return {ms: part for ms, part in zip(MINI_BATCH_MS, parts, strict=True)}


@pytest.mark.parametrize("mini_batch_ms", MINI_BATCH_MS)
def test_one_read_of_the_topic_feeds_the_three_queries_with_or_without_mini_batch(plans, mini_batch_ms):
    """EXPLAIN: one scan of the CDC topic, reused by both aggregates and the late-event report;
    no Flink watermark anywhere (the report keeps its own newest commit time in an OVER aggregate), so a mini-batch
    assigner above the scan changes no result; with mini-batch, two-phase aggregation."""
    plan = plans[mini_batch_ms].split("== Optimized Execution Plan ==")[1]
    assert plan.count("TableSourceScan(") == 1 and plan.count("Reused(reference_id=[1])") == 3
    assert "OverAggregate(" in plan and "Watermark" not in plan
    assert ("MiniBatchAssigner(interval=[500ms]" in plan) == bool(mini_batch_ms)
    assert plan.count("LocalGroupAggregate(") == (2 if mini_batch_ms else 0)


# -- events and topics ---------------------------------------------------------------------------


def row(order: str, seq: int, ptype: str, inst: int, cents: int) -> dict[str, Any]:
    return {
        "order_id": order * 32 if len(order) == 1 else order,
        "payment_sequential": seq,
        "payment_type": ptype,
        "payment_installments": inst,
        "payment_value": cents / 100,
    }


LSN = itertools.count(2000)


def envelope(op: str, before: dict | None, after: dict | None, commit_ms: int) -> dict[str, Any]:
    source = {
        "version": "3.6.1.Final",
        "connector": "postgresql",
        "name": "olistcdc",
        "ts_ms": commit_ms,
        "snapshot": "true" if op == "r" else "false",
        "db": "olist",
        "schema": "olist",
        "table": "order_payments",
        "txId": 1000,
        "lsn": next(LSN),  # each change its own log position; a redelivery repeats its envelope whole
    }
    return {"before": before, "after": after, "op": op, "ts_ms": commit_ms + 40, "source": source}


def produce(kafka: KafkaService, topic: str, events: list[dict | None]) -> None:
    producer = Producer(kafka.client_config(**{"enable.idempotence": True}))
    last_key = None
    for event in events:
        if event is not None:
            r = event["after"] or event["before"]
            last_key = json.dumps({"order_id": r["order_id"], "payment_sequential": r["payment_sequential"]})
        producer.produce(
            topic,
            key=last_key.encode() if last_key else None,
            value=None if event is None else json.dumps(event).encode(),
        )
    assert producer.flush(30) == 0


def read_topic(kafka: KafkaService, topic: str) -> list[tuple[dict | None, dict | None]]:
    """Every committed (key, value) of the topic, in order, as JSON."""
    return [(r.json_key(), r.json_value()) for r in read_records(kafka, topic)]


def _typed(value: dict[str, Any]) -> dict[str, Any]:
    out = dict(value)
    for name in ("window_start", "window_end", "commit_time", "watermark_time"):
        if name in out:
            out[name] = dt.datetime.fromisoformat(out[name])
    for name in ("payment_sum", "payment_min", "payment_max"):
        if name in out:
            out[name] = decimal.Decimal(out[name])
    if "payment_avg" in out:
        out["payment_avg"] = float(out["payment_avg"])
    return out


def results(kafka: KafkaService, topics: dict[str, str]) -> Windows:
    """The windowed topics read as tables (last value per key, tombstones delete) and the late events."""
    out = Windows()
    for name, target in (
        (NAMES.aggregated, out.aggregated),
        (NAMES.installments, out.installments),
    ):
        table: dict[str, dict | None] = {}
        for key, value in read_topic(kafka, topics[name]):
            table[json.dumps(key, sort_keys=True)] = value
        for value in table.values():
            if value is not None:
                v = _typed(value)
                k = (
                    (v["window_start"], v["payment_type"])
                    if "payment_count" in v
                    else (v["window_start"], v["payment_type"], v["payment_installments"])
                )
                target[k] = v
    out.late = [_typed(v) for _, v in read_topic(kafka, topics[NAMES.late]) if v is not None]
    return out


def assert_same(got: Windows, want: Windows) -> None:
    assert got.aggregated == want.aggregated
    assert got.installments == want.installments
    assert got.late == want.late


# -- the job as a service, streaming -------------------------------------------------------------


def scenario() -> list[dict | None]:
    """Window 10 s, watermark delay 2 s; comments give the watermark before each event."""
    a1, a2 = row("a", 1, "boleto", 1, 1050), row("a", 1, "credit_card", 4, 2025)
    b1, c1, e1 = row("b", 1, "credit_card", 3, 9999), row("c", 1, "boleto", 1, 500), row("e", 1, "voucher", 1, 730)
    return [
        envelope("c", None, a1, T0 + 1_000),
        envelope("c", None, b1, T0 + 2_500),
        envelope("c", None, c1, T0 + 3_000),
        envelope("c", None, e1, T0 + 4_000),
        envelope("u", a1, a2, T0 + 12_000),  # a moves from window 0 (boleto) to window 1 (credit card, 4x)
        envelope("c", None, row("f", 1, "boleto", 1, 1), T0 + 11_500),  # wm 10.0 s: out of order, not late
        envelope("d", c1, None, T0 + 13_000),
        None,  # the delete's tombstone
        late_update := envelope("u", e1, {**e1, "payment_value": 7.31}, T0 + 9_000),  # wm 11.0 s: late, applied
        late_update,  # redelivered (Debezium is at-least-once): reported once
        envelope("c", None, row("9", 1, "voucher", 1, 1200), T0 + 5_000),  # late
        envelope("d", b1, None, T0 + 6_000),  # late: window 0 loses its only credit card payment
        None,
        envelope("r", None, row("8", 2, "debit_card", 1, 4400), T0 + 25_000),
        envelope("r", None, row("8", 2, "debit_card", 1, 4400), T0 + 25_000),  # redelivered: counted once
        envelope("c", None, row("a", 2, "voucher", 1, 300), T0 + 21_000),  # wm 23.0 s: late
    ]


def test_the_running_job_matches_the_reference_exactly(kafka, flink_python, test_settings):
    service = FlinkService(test_settings.replace(state_dir=kafka.state_dir.parent,
                                                flink={"checkpoint_interval_seconds": 1}))
    provision.ensure(service.settings, "kafka")  # the topics, and the grants of the job's principal
    started = time.monotonic()
    with running(service):
        startup = time.monotonic() - started
        st_ = service.status()
        assert st_.healthy and st_.running
        job = service.running_job()
        assert job is not None and job["state"] == "RUNNING"
        assert service.job_status()["state"] == "RUNNING" and service.job_status()["job_id"] == job["jid"]

        events = scenario()
        produced = time.monotonic()
        produce(kafka, NAMES.raw, events[:4])
        topics = {t: t for t in SINKS}
        first = None
        while first is None and time.monotonic() - produced < 60:
            if read_topic(kafka, NAMES.aggregated):
                first = time.monotonic() - produced
            else:
                time.sleep(0.3)
        assert first is not None, service.logs()
        produce(kafka, NAMES.raw, events[4:])
        want = compute(events, 10_000, 2_000)
        assert len(want.late) == 4 and want.aggregated, "the scenario has late events and windows"
        deadline, got = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            got = results(kafka, topics)
            if got == want:
                break
            time.sleep(1)
        assert got is not None
        assert_same(got, want)
        print(f"\nflink: job RUNNING {startup:.1f}s after start; first window readable {first:.1f}s after producing")
    assert service.pid() is None, "stop ends the job process"


def test_an_option_outside_the_plan_restores_the_savepoint_into_the_same_plan(kafka, flink_python, test_settings):
    """The job runs its compiled plan; stopped with a savepoint and started again with options its plan does not hold
    (checkpoint interval, restart attempts), it resumes from that savepoint into the same operators: the windows of
    every event, those before the stop included, equal the reference's."""
    base = test_settings.replace(state_dir=kafka.state_dir.parent, flink={"checkpoint_interval_seconds": 1})
    first = FlinkService(base)
    provision.ensure(base, "kafka")
    # day 40, after the events the test above wrote to the same topic (so none of them makes one of these late)
    events = shifted(scenario(), 40)
    try:
        first.start()
        produce(kafka, NAMES.raw, events[:6])
        deadline = time.monotonic() + 90
        while not on_day(results(kafka, {t: t for t in SINKS}), 40).aggregated and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        first.stop()  # with a savepoint; its state stays
    view = first.job_dir
    savepoints = list((view / "savepoints").glob("*/_metadata"))
    assert savepoints, f"stop took no savepoint in {view}"
    tuned = FlinkService(base.replace(flink={"checkpoint_interval_seconds": 2, "restart_attempts": 5}))
    assert tuned.job_dir == view, "the same compiled plan: the same view and state"
    with running(tuned):
        assert "savepoints" in str(tuned.job_status().get("restored_from")), tuned.job_status()
        produce(kafka, NAMES.raw, events[6:])
        want, deadline = compute(events, 10_000, 2_000), time.monotonic() + 90
        while (got := on_day(results(kafka, {t: t for t in SINKS}), 40)) != want and time.monotonic() < deadline:
            time.sleep(1)
        assert_same(got, want)


# -- the same job on generated streams ------------------------------------------------------------


@st.composite
def change_streams(draw) -> list[dict | None]:
    """Debezium events of a table with 6 payment keys: commit times drift forward with jitter, some far back."""
    table: dict[tuple[str, int], dict] = {}
    clock, events = T0 + draw(st.integers(0, 1_999)), []
    for _ in range(draw(st.integers(1, 40))):
        key = (draw(st.sampled_from("abc")), draw(st.integers(1, 2)))
        clock += draw(st.integers(0, 700))
        commit = clock - draw(st.sampled_from([0, 0, 0, 300, 900, 2_500]))  # in order, jittered, or late
        new = row(key[0], key[1], draw(st.sampled_from(TYPES)), draw(st.integers(0, 3)), draw(st.integers(0, 50_000)))
        if key in table and draw(st.booleans()):
            old = table.pop(key)
            events += [envelope("d", old, None, commit), None]
        elif key in table:
            events.append(envelope("u", table[key], new, commit))
            table[key] = new
        else:
            events.append(envelope(draw(st.sampled_from("cr")), None, new, commit))
            table[key] = new
        if events[-1] is not None and draw(st.integers(0, 9)) == 0:
            events.append(events[-1])  # at-least-once redelivery
    return events


DAY_MS = 86_400_000


def shifted(events: list[dict | None], n: int) -> list[dict | None]:
    """Example ``n``'s events on day ``n`` after T0, its order ids prefixed with ``n``: examples fed one after
    another to one running job share no key and no window, and each starts after every earlier one (so the
    watermark an example inherits makes none of its own events late)."""

    def move(image: dict | None) -> dict | None:
        return None if image is None else {**image, "order_id": f"{n:08x}{image['order_id'][8:]}"}

    out = []
    for e in events:
        if e is None:
            out.append(None)
            continue
        source = {**e["source"], "ts_ms": e["source"]["ts_ms"] + n * DAY_MS}
        out.append({**e, "before": move(e["before"]), "after": move(e["after"]), "source": source,
                    "ts_ms": e["ts_ms"] + n * DAY_MS})
    return out


def on_day(windows: Windows, n: int) -> Windows:
    """The windows and late events of day ``n`` after T0, from half a day before to half a day after (one example's:
    its commit times lie within a minute of it)."""
    lo, hi = (dt.datetime.fromtimestamp((T0 + d * DAY_MS) / 1000, dt.UTC).replace(tzinfo=None)
              for d in (n - 0.5, n + 0.5))
    out = Windows()
    out.aggregated = {k: v for k, v in windows.aggregated.items() if lo <= k[0] < hi}
    out.installments = {k: v for k, v in windows.installments.items() if lo <= k[0] < hi}
    out.late = [v for v in windows.late if lo <= v["commit_time"] < hi]
    return out


def job_command(kafka: KafkaService, settings, flink_python, *extra: str, **flink_changes) -> tuple[dict, list[str]]:
    """Topics of its own (created) and the command of a job on them: window 2 s, watermark delay 1 s."""
    python, jar = flink_python
    tag = uuid.uuid4().hex[:8]
    topics = {NAMES.raw: f"cdc-{tag}", **{t: f"{t}-{tag}" for t in SINKS}}
    specs = {s.name: s for s in topic_specs()}
    kafka.create_topics([TopicSpec(new, 1, dict(specs[old].config)) for old, new in topics.items()])
    flink = settings.flink.model_copy(update={"window_seconds": 2, "watermark_delay_seconds": 1.0,
                                              "checkpoint_interval_seconds": 0.5, "restart_attempts": 0,
                                              "group_id": f"g-{tag}", **flink_changes})
    access = write_kafka_properties(kafka, kafka.state_dir / f"flink-{tag}.json", principal="admin")
    cmd = [str(python), str(JOB), *job_arguments(flink), "--bootstrap", kafka.bootstrap_servers(),
           "--connector-jar", str(jar), "--transactional-id-prefix", f"t-{tag}", "--kafka-properties", str(access),
           "--state-dir", str(kafka.state_dir / f"flink-{tag}"), *extra,
           *(f"--topic={old}={new}" for old, new in topics.items())]
    return topics, cmd


@dataclasses.dataclass
class GeneratedJob:
    topics: dict[str, str]
    proc: subprocess.Popen
    log: Path

    def alive(self) -> None:
        """Fail at once with the job's log when it died (instead of waiting out every example)."""
        assert self.proc.poll() is None, f"the job died: {self.log.read_text()[-3000:]}"


@pytest.fixture(scope="module")
def generated_job(kafka, test_settings, flink_python) -> Iterator[GeneratedJob]:
    """One running job that every generated example is fed to in turn (a job per example would start a JVM each,
    ~20 s): its topics, the process and its log."""
    topics, cmd = job_command(kafka, test_settings, flink_python)
    log = kafka.state_dir / f"{topics[NAMES.raw]}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield GeneratedJob(topics, proc, log)
    finally:
        kill_tree(proc.pid)


def test_a_running_job_matches_the_reference_on_each_generated_stream(kafka, generated_job):
    """Each generated stream (hypothesis) on its own day and keys, fed to the one running job, read back from its
    committed output: the same windows and late events as the reference computes for that stream alone."""
    job = generated_job
    examples = iter(range(1, 10_000))

    @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
    @given(events=change_streams())
    def check(events: list[dict | None]) -> None:
        n = next(examples)
        events = shifted(events, n)
        produce(kafka, job.topics[NAMES.raw], events)
        # the first example also waits out the job's start (a JVM, the connector, the first checkpoint: over a
        # minute on a loaded machine); after that each example's output is due within a minute
        want, deadline = compute(events, 2_000, 1_000), time.monotonic() + (180 if n == 1 else 60)
        while (got := on_day(results(kafka, job.topics), n)) != want and time.monotonic() < deadline:
            job.alive()
            time.sleep(0.5)
        assert_same(got, want)

    check()


def test_a_bounded_run_matches_the_reference(kafka, test_settings, flink_python):
    """``--bounded`` reads the topic to its end offsets and finishes: the scenario on two days (inserts, updates
    across windows, deletes with tombstones, redeliveries, late events), read in one bounded run to topics of its
    own with mini-batch on (off by default), gives the reference's windows of the whole sequence. Its events are its
    own, so it runs alone as well as after the other tests."""
    events = [*shifted(scenario(), 1), *shifted(scenario(), 2)]
    want = compute(events, 2_000, 1_000)
    assert want.late and want.aggregated, "the sequence has late events and windows"
    topics, cmd = job_command(kafka, test_settings, flink_python, "--bounded", mini_batch_latency_ms=500)
    produce(kafka, topics[NAMES.raw], events)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_same(results(kafka, topics), want)


def test_a_new_view_replays_history_the_topic_no_longer_holds_then_reads_the_live_tail(kafka, test_settings,
                                                                                      flink_python, tmp_path):
    """The replay's two phases on the job's compiled plan. Part of the history is gone from the raw topic
    (retention: its records deleted below offset A) and held only by the archive, copied in offset order to a feed
    topic. Phase 1 runs the plan on the feed and stops with a savepoint once it has read it all; phase 2 runs the same
    plan with a fresh source (a new uid, its old offsets left unclaimed) from the raw topic's offset A, every other
    operator restoring its state, while trading goes on. The windows and late events of the whole history equal the
    reference's: nothing older than the retention is lost, nothing is counted twice."""
    from confluent_kafka import TopicPartition

    from pipeline.speed.topics import committed_offsets, end_offsets

    events = shifted(scenario(), 60)
    want = compute(events, 2_000, 1_000)
    topics, cmd = job_command(kafka, test_settings, flink_python)
    raw, feed = topics[NAMES.raw], f"{topics[NAMES.raw]}-feed"
    kafka.create_topics([TopicSpec(feed, 1, dict(next(s for s in topic_specs() if s.name == NAMES.raw).config))])
    # the history is the four new payments: every later change updates or deletes one of them (or is late against
    # their newest commit time), so the tail is right only if phase 2 took phase 1's state
    history, tail = events[:4], events[4:]
    produce(kafka, raw, history)
    archived = end_offsets(kafka.client_config(), raw)[0]
    produce(kafka, feed, history)  # the archive's records, in offset order
    admin = kafka.admin()
    for future in admin.delete_records([TopicPartition(raw, 0, archived)]).values():
        future.result(30)  # retention took them: only the archive (the feed) holds them now
    plan = tmp_path / "plan.json"
    subprocess.run([*cmd, "--compile-plan", str(plan)], check=True, capture_output=True, timeout=300)
    group = cmd[cmd.index("--group-id") + 1] + "-events"
    state = Path(cmd[cmd.index("--state-dir") + 1])

    phase1 = subprocess.Popen([*cmd, "--plan", str(plan), f"--topic={NAMES.raw}={feed}"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        produce(kafka, raw, tail[:3])  # trading goes on during the replay
        deadline = time.monotonic() + 180
        while committed_offsets(kafka.client_config(), group, feed).get(0, 0) < archived:
            assert phase1.poll() is None and time.monotonic() < deadline, "phase 1 did not read the feed"
            time.sleep(0.5)
        phase1.send_signal(subprocess.signal.SIGTERM)
        out, _ = phase1.communicate(timeout=120)
    finally:
        kill_tree(phase1.pid)
    savepoint = next(iter(sorted((state / "savepoints").glob("*/_metadata"))), None)
    assert savepoint is not None, out[-3000:]

    phase2 = subprocess.Popen([*cmd, "--plan", str(plan), "--fresh-source", "--start-offsets", f"0:{archived}",
                               "--restore", str(savepoint.parent)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        produce(kafka, raw, tail[3:])
        deadline = time.monotonic() + 180
        while (got := results(kafka, topics)) != want and time.monotonic() < deadline:
            assert phase2.poll() is None, phase2.communicate()[0][-3000:]
            time.sleep(1)
        assert_same(got, want)
    finally:
        kill_tree(phase2.pid)
