"""Fault injection on the speed lane (`nox -s faults`): the simulator trades at a steady rate (inserts, updates,
deletes), one component is killed with SIGKILL mid-stream, it comes back (the supervisor restarts the Flink job,
the sink, the archive; `olist up` restarts an engine; the test restarts the simulator), the simulator stops, the
lane settles, and then:

* Cassandra equals an independent fold of the raw topic (what PostgreSQL durably committed, as Debezium read it)
  value for value, exact decimals: no window lost, none double counted;
* the raw topic replays to PostgreSQL's table row for row (CDC lost or invented nothing);
* the raw archive holds every offset exactly once;
* no late event is reported twice.

Each scenario reports its recovery time: from the kill until Cassandra serves a window of changes committed after
the kill (the lane is current again). The table is printed at the end of the module.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import psutil
import psycopg
import pytest

from emulation.rehearsal import Rehearsal
from emulation.resources import engine
from emulation.service import Service
from pipeline import platform
from pipeline.batch.load import load_directory
from pipeline.contracts import stream_names
from pipeline.lake import ArchiveLayout
from pipeline.serving.windows import read_windows
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.speed import cdc
from pipeline.speed.services import ArchiveService, FlinkService, SinkService, WatchdogService
from pipeline.speed.simulate import simulate
from pipeline.speed.topics import end_offsets
from pipeline.storage import s3_location
from tests.fixtures.tiny import write_tiny
from tests.kafka_helpers import read_topic
from tests.reference.windows import compute

pytestmark = pytest.mark.faults

NAMES = stream_names()
WINDOW_S, DELAY_S = 2, 2
ENGINES = ["postgres", "s3", "kafka", "connect", "cassandra"]
DEPLOYMENT = os.environ.get("OLIST_TEST_DEPLOYMENT", "local")  # local | cluster (`nox -s cluster`)
PIECES = ["flink", "serve", "archive", "watchdog"]
RESULTS: list[tuple[str, str, float, int, int]] = []  # component, scenario, recovery s, rows compared, differences


@pytest.fixture(scope="module")
def settings(request, tmp_path_factory) -> Iterator[Settings]:
    """Local engines started by the lane (`olist up`), or with ``OLIST_TEST_DEPLOYMENT=cluster`` the rehearsal
    cluster's, named by settings (topics and the serving keyspace emptied first: a module before may have used
    them)."""
    state = PROJECT_ROOT / ".state" / f"faults-{os.getpid()}"
    base = Settings()
    if DEPLOYMENT == "cluster":
        base = request.getfixturevalue("rehearsal").deployment()
        empty_the_lane(base)
    settings = base.replace(state_dir=state, data_dir=tmp_path_factory.mktemp("faults-data"),
                            flink={"window_seconds": WINDOW_S, "watermark_delay_seconds": DELAY_S,
                                   "checkpoint_interval_seconds": 1})
    yield settings
    platform.down(settings, purge=True)
    shutil.rmtree(state, ignore_errors=True)
    print("\n\ncomponent         scenario                                recovery s  rows compared  differences")
    for component, scenario, seconds, rows, diffs in RESULTS:
        print(f"{component:<17} {scenario:<39} {seconds:>10.1f}  {rows:>13,}  {diffs:>11}")


@pytest.fixture(scope="module")
def lane(settings) -> Settings:
    """Every engine up, the tiny data set loaded, CDC registered, and the lane's pieces supervised."""
    platform.up(settings, ENGINES)
    load_directory(write_tiny(settings.data_dir), engine("postgres", settings).conninfo(), settings.pg_schema)
    cdc.start(settings)
    platform.up(settings, PIECES)
    return settings


def empty_the_lane(settings: Settings) -> None:
    """No CDC connector, no topic of the contracts, no serving keyspace: what a module before left on a shared
    deployment (the lane makes them again)."""
    from pipeline.speed.cdc import topic_specs

    cdc.stop(settings)
    engine("kafka", settings).delete_topics([spec.name for spec in topic_specs()])
    with engine("cassandra", settings).session(timeout=60, metadata=False) as session:
        session.execute(f"DROP KEYSPACE IF EXISTS {NAMES.keyspace}", timeout=120)


# -- killing -------------------------------------------------------------------------------------


def kill9(pid: int | None, what: str) -> None:
    assert pid is not None, f"{what} is not running"
    os.kill(pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(pid)], timeout=10) if psutil.pid_exists(pid) else None


def flink_jvm(settings: Settings) -> int | None:
    """The mini-cluster's JVM (JobManager and TaskManager in one), the child of the job's Python process."""
    pid = FlinkService(settings).pid()
    if pid is None:
        return None
    java = [c for c in psutil.Process(pid).children(recursive=True) if "java" in c.name()]
    return java[0].pid if java else None


def checkpoint_being_written(settings: Settings, jid: str) -> Path | None:
    """A ``chk-N`` of the running job that Flink has begun (the JobManager makes the folder when it triggers the
    checkpoint) but not finished (no ``_metadata`` yet). Read from the file system: the REST API caches its
    checkpoint statistics for seconds, longer than a checkpoint takes."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(FlinkService(settings).job_dir / "checkpoints" / jid):
            if entry.name.startswith("chk-") and not os.path.exists(os.path.join(entry.path, "_metadata")):
                return Path(entry.path)
    return None


def kill_during_a_checkpoint(settings: Settings, trading: Trading, attempts: int = 5) -> float:
    """SIGKILL the Flink JVM while a checkpoint is being written, and make sure it was (the checkpoint is left
    without ``_metadata``); when the checkpoint won the race, wait for the job to run again and try again.
    Returns when the successful kill landed."""
    for _ in range(attempts):
        assert wait_for(lambda: FlinkService(settings).health(), 120), "the Flink job is not running"
        trading.extend(12)  # changes keep coming through this attempt and the recovery after it
        jid = FlinkService(settings).running_job()["jid"]
        deadline, chk = time.monotonic() + 20, None
        while chk is None and time.monotonic() < deadline:
            chk = checkpoint_being_written(settings, jid)
            time.sleep(0.002) if chk is None else None
        assert chk is not None, "no checkpoint was seen being written in 20 s"
        killed_at = time.monotonic()
        kill9(flink_jvm(settings), "flink")
        if not (chk / "_metadata").exists():
            return killed_at
    raise AssertionError(f"every one of {attempts} checkpoints completed before the kill landed")


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


class Trading:
    """The simulator in a thread at a steady rate; a kill of PostgreSQL ends a run, and it starts again."""

    def __init__(self, settings: Settings, seconds: float, rate: float = 120) -> None:
        self.settings, self.seconds, self.rate = settings, seconds, rate
        self.stop_at = time.monotonic() + seconds
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while (left := self.stop_at - time.monotonic()) > 0.5:
            try:
                simulate(engine("postgres", self.settings).conninfo(), self.settings.pg_schema, self.rate, left,
                         seed=uuid.uuid4().int % 10**6)
            except (psycopg.Error, OSError) as exc:  # PostgreSQL was killed: trade again once it is back
                self.errors.append(exc)
                time.sleep(1)

    def extend(self, seconds: float) -> None:
        """Trade at least ``seconds`` more (before the run has ended)."""
        self.stop_at = max(self.stop_at, time.monotonic() + seconds)

    def __enter__(self) -> Trading:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(max(self.stop_at - time.monotonic(), 0) + 120)


# -- the independent fold and what the lane holds -------------------------------------------------


def raw_events(settings: Settings) -> list[dict]:
    return [r.json_value() for r in read_topic(engine("kafka", settings), NAMES.raw, timeout=60) if r.value is not None]


def expected(events: list[dict]) -> dict[tuple, tuple]:
    want = compute(events, WINDOW_S * 1000, DELAY_S * 1000).aggregated
    return {(k[0], k[1]): (v["payment_count"], v["payment_sum"], v["payment_min"], v["payment_max"])
            for k, v in want.items()}


def served(settings: Settings) -> dict[tuple, tuple]:
    with engine("cassandra", settings).session(NAMES.keyspace, timeout=30) as session:
        rows = read_windows(session, NAMES.aggregated, 24 * 60, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    return {(r["window_start"].replace(tzinfo=None), r["payment_type"]):
            (r["payment_count"], r["payment_sum"], r["payment_min"], r["payment_max"]) for r in rows}


def newest_served(settings: Settings) -> dt.datetime | None:
    try:
        return max((k[0] for k in served(settings)), default=None)
    except Exception:  # Cassandra itself may be the one down
        return None


def settle_and_check(settings: Settings, component: str, scenario: str, recovery: float) -> None:
    """Wait until Cassandra equals the fold of the raw topic; then every exactness check; record the row."""
    want: dict = {}

    def equal() -> bool:
        nonlocal want
        want = expected(raw_events(settings))
        return served(settings) == want

    converged = wait_for(equal, 180, 3)
    got = served(settings)
    diffs = {k for k in set(want) | set(got) if want.get(k) != got.get(k)}
    RESULTS.append((component, scenario, recovery, len(want), len(diffs)))
    assert converged and not diffs, f"{len(diffs)} windows differ, e.g. {sorted(diffs)[:3]}"
    replayed: dict[tuple, tuple] = {}
    for event in raw_events(settings):
        row = event["after"] or event["before"]
        k = (row["order_id"], row["payment_sequential"])
        if event["op"] == "d":
            replayed.pop(k, None)
        else:
            replayed[k] = (row["payment_type"], row["payment_installments"], Decimal(str(row["payment_value"])))
    with psycopg.connect(engine("postgres", settings).conninfo()) as conn:
        table = {(o, s): (t, i, v) for o, s, t, i, v in conn.execute(
            f"select order_id, payment_sequential, payment_type, payment_installments, payment_value "
            f"from {settings.pg_schema}.order_payments")}
    assert replayed == table, "the raw topic replays to PostgreSQL's table"
    layout = ArchiveLayout(s3_location(settings), settings.raw_prefix, NAMES.raw)
    # every record's offset (with exactly-once CDC, transaction markers take offsets and hold no record)
    offsets = [r.offset for r in read_topic(engine("kafka", settings), NAMES.raw, timeout=60)]
    assert wait_for(lambda: sum(layout.progress().values()) >= offsets[-1] + 1, 60), "the archive caught up"
    assert layout.read().column("kafka_offset").to_pylist() == offsets, "every record archived once"
    late = Counter((e["order_id"], e["payment_sequential"], e["op"], e["commit_time"])
                   for e in (r.json_value() for r in read_topic(engine("kafka", settings), NAMES.late)))
    assert not [k for k, n in late.items() if n > 1], "a late event was reported twice"


def recovered_after(settings: Settings, killed_at: float, timeout: float = 120) -> float:
    """Seconds from the kill until Cassandra serves a window that starts after it."""
    mark = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=time.monotonic() - killed_at)
    assert wait_for(lambda: (newest_served(settings) or dt.datetime.min) > mark + dt.timedelta(seconds=WINDOW_S),
                    timeout, 0.5), "Cassandra never became current again"
    return time.monotonic() - killed_at


# -- the scenarios --------------------------------------------------------------------------------


def restart_engine(settings: Settings, name: str) -> None:
    platform.up(settings, [name])


SCENARIOS: dict[str, tuple[str, Callable[[Settings], None]]] = {
    "kafka": ("broker killed, `olist up kafka`",
              lambda s: (kill9(engine("kafka", s).pid(), "kafka"), restart_engine(s, "kafka"))),
    "connect": ("worker killed, `olist up connect`",
                lambda s: (kill9(engine("connect", s).pid(), "connect"), restart_engine(s, "connect"))),
    "flink": ("JobManager JVM killed, supervisor", lambda s: kill9(flink_jvm(s), "flink")),
    "serve": ("sink killed, supervisor", lambda s: kill9(SinkService(s).pid(), "sink")),
    "archive": ("archive killed, supervisor", lambda s: kill9(ArchiveService(s).pid(), "archive")),
    "cassandra": ("node killed, `olist up cassandra`",
                  lambda s: (kill9(engine("cassandra", s).pid(), "cassandra"), restart_engine(s, "cassandra"))),
    "postgres": ("postmaster killed, `olist up postgres`",
                 lambda s: (kill9(engine("postgres", s).pid(), "postgres"), restart_engine(s, "postgres"))),
}


LOCAL_ONLY = pytest.mark.skipif(DEPLOYMENT == "cluster", reason="kills the local engines and the mini-cluster's "
                                "JVM; on the cluster test_a_cluster_node_killed_mid_stream_changes_no_result kills "
                                "its nodes")


@LOCAL_ONLY
@pytest.mark.parametrize("component", list(SCENARIOS))
def test_a_component_killed_mid_stream_changes_no_result(lane, component):
    scenario, kill = SCENARIOS[component]
    with Trading(lane, 16):
        time.sleep(5)
        killed_at = time.monotonic()
        kill(lane)
        recovery = recovered_after(lane, killed_at)
    settle_and_check(lane, component, scenario, recovery)


@LOCAL_ONLY
def test_the_simulator_killed_mid_transaction_changes_no_result(lane):
    """`olist simulate` as its own process, killed while it commits: its open transaction never happened."""
    import subprocess
    import sys

    env = {**os.environ, "OLIST_STATE_DIR": str(lane.state_dir), "OLIST_PG_SCHEMA": lane.pg_schema}
    config = engine("kafka", lane).client_config()
    before = sum(end_offsets(config, NAMES.raw).values())
    output = lane.state_dir / "simulate.out"
    with output.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "simulate", "--rate", "400", "--duration",
                                 "30"], env=env, stdout=out, stderr=subprocess.STDOUT)
    assert wait_for(lambda: sum(end_offsets(config, NAMES.raw).values()) > before + 100, 20), (
        f"the simulator is not trading (exit {proc.poll()}): {output.read_text()[-500:]}")
    time.sleep(2)
    assert proc.poll() is None, "the simulator ended before the kill"
    killed_at = time.monotonic()
    kill9(proc.pid, "the simulator")
    with Trading(lane, 8):
        recovery = recovered_after(lane, killed_at)
    settle_and_check(lane, "simulator", "olist simulate killed, run again", recovery)


@LOCAL_ONLY
def test_a_kill_during_a_flink_checkpoint_changes_no_result(lane):
    with Trading(lane, 16) as trading:
        killed_at = kill_during_a_checkpoint(lane, trading)
        recovery = recovered_after(lane, killed_at)
    settle_and_check(lane, "flink", "killed during a checkpoint", recovery)


@LOCAL_ONLY
def test_two_kills_in_a_row_change_no_result(lane):
    """The Flink job killed, and killed again as soon as it runs again; then the sink twice."""
    with Trading(lane, 24):
        time.sleep(4)
        killed_at = time.monotonic()
        kill9(flink_jvm(lane), "flink")
        assert wait_for(lambda: FlinkService(lane).health(), 120)
        kill9(flink_jvm(lane), "flink")
        kill9(SinkService(lane).pid(), "sink")
        assert wait_for(lambda: SinkService(lane).health(), 60)
        kill9(SinkService(lane).pid(), "sink")
        recovery = recovered_after(lane, killed_at)
    settle_and_check(lane, "flink + sink", "two kills in a row each", recovery)
    assert FlinkService(lane).restarts() >= 2 and SinkService(lane).restarts() >= 2
    assert WatchdogService(lane).health()


@LOCAL_ONLY
def test_status_counts_the_restarts(lane):
    report = platform.status(lane)
    detail = {st.name: st.detail for st, _ in report.services}
    assert "restarted" in detail["flink"] and "restarted" in detail["serve"]
    assert Path(lane.state_dir / "supervisor" / "supervisor.sock").exists()


# -- the rehearsal cluster's nodes (`nox -s cluster`) ---------------------------------------------


def kafka_leader(rehearsal: Rehearsal, settings: Settings) -> Service:
    """The node leading the raw topic's partition."""
    topic = engine("kafka", settings).admin().list_topics(NAMES.raw, timeout=10).topics[NAMES.raw]
    return rehearsal.node(f"kafka-{topic.partitions[0].leader}")


def kafka_controller(rehearsal: Rehearsal, settings: Settings) -> Service:
    """The active KRaft controller: the leader of the metadata quorum, as the voters' quorum-state files say."""
    return rehearsal.node(f"kafka-{rehearsal.kafka_controller()}")


def connect_worker(rehearsal: Rehearsal, settings: Settings) -> Service:
    """The worker running the CDC connector's task."""
    status = engine("connect", settings).connector_status(cdc.CONNECTOR)
    assert status and status["tasks"], f"the connector has no task: {status}"
    port = int(status["tasks"][0]["worker_id"].rsplit(":", 1)[1])
    return next(w for w in rehearsal.connect_workers() if w.endpoint() and w.endpoint().port == port)


def flink_taskmanager(rehearsal: Rehearsal, settings: Settings) -> Service:
    """The TaskManager running the job's tasks (the other has free slots: the job moves there)."""
    from emulation import flink_session

    jid = FlinkService(settings).running_job()["jid"]
    running = flink_session.job_taskmanagers(str(settings.flink.rest_url), jid)
    assert running, f"no TaskManager runs a task of job {jid}"
    return rehearsal.flink_cluster().taskmanager(sorted(running)[0])


def cassandra_replica(rehearsal: Rehearsal, settings: Settings) -> Service:
    """A replica of every serving row (RF 3): the sink's QUORUM writes need two of the three."""
    return rehearsal.node("cassandra-2")


CLUSTER_SCENARIOS: dict[str, tuple[str, Callable[[Rehearsal, Settings], Service]]] = {
    "kafka leader": ("the raw topic's partition leader", kafka_leader),
    "kafka controller": ("the active KRaft controller", kafka_controller),
    "connect worker": ("the worker running the CDC task (it moves)", connect_worker),
    "flink taskmanager": ("the TaskManager running the job (it moves)", flink_taskmanager),
    "cassandra node": ("a replica (QUORUM holds; hints replay)", cassandra_replica),
}


@pytest.mark.skipif(DEPLOYMENT != "cluster", reason="needs the rehearsal cluster: `nox -s cluster`")
@pytest.mark.parametrize("node", list(CLUSTER_SCENARIOS))
def test_a_cluster_node_killed_mid_stream_changes_no_result(request, lane, node):
    """One node killed with SIGKILL mid-stream and left down while the lane recovers without it (the stall is
    from the kill until Cassandra serves a window committed after it), then started again; results exact."""
    rehearsal = request.getfixturevalue("rehearsal")
    scenario, pick = CLUSTER_SCENARIOS[node]
    with Trading(lane, 30) as trading:
        time.sleep(5)
        victim = pick(rehearsal, lane)
        killed_at = time.monotonic()
        kill9(victim.pid(), victim.name)
        recovery = recovered_after(lane, killed_at, timeout=240)
        trading.extend(5)
        victim.start()
    settle_and_check(lane, victim.name, f"{scenario} killed -9", recovery)
