"""Cassandra 5.0 on a real JVM (from the Maven Central jars) and the serving sink from a real Kafka broker:
the node answers CQL on 127.0.0.1 only and keeps its data across a restart; the CQL generated from the contracts
creates the keyspace and tables; the sink writes exactly the committed records, never double counts on replay,
never writes an aborted transaction, and dead-letters a record breaking the contract with the reason."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from decimal import Decimal

import psutil
import pytest
from confluent_kafka import Producer

from emulation.kafka import KafkaService
from emulation.resources import engine
from emulation.service import port_is_free
from pipeline.contracts import load_registry, stream_names
from pipeline.contracts.render_cassandra import UPDATED_COLUMN
from pipeline.provision.cassandra import apply_schema
from pipeline.serving.windows import read_windows
from pipeline.speed.cdc import topic_specs
from pipeline.speed.sink import CassandraSink
from tests.conftest import running
from tests.kafka_helpers import read_topic

pytestmark = pytest.mark.integration
NAMES = stream_names()
AGGREGATED, INSTALLMENTS, LATE = NAMES.served
KEYSPACE = NAMES.keyspace
GROUP = f"serving-{uuid.uuid4().hex[:6]}"
TYPES = ("credit_card", "boleto", "voucher", "debit_card")


@pytest.fixture(scope="module")
def settings(test_settings):
    return test_settings.model_copy(update={"state_dir": test_settings.state_dir / f"cs{os.getpid()}"})


@pytest.fixture(scope="module")
def cassandra(settings):
    with running(engine("cassandra", settings)) as svc:
        yield svc


@pytest.fixture(scope="module")
def kafka(settings):
    with running(engine("kafka", settings)) as svc:
        svc.create_topics([s for s in topic_specs() if s.name.removesuffix(".dlq") in NAMES.served])
        yield svc


@pytest.fixture(scope="module")
def session(cassandra):
    with cassandra.session(timeout=30) as s:
        apply_schema(s)
        yield s


def window(day: dt.date, second: int) -> tuple[str, str]:
    """Flink's text form of a 10-second window starting ``second`` seconds into ``day``."""
    start = dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(seconds=second)
    end = start + dt.timedelta(seconds=10)
    return start.strftime("%Y-%m-%d %H:%M:%S.000"), end.strftime("%Y-%m-%d %H:%M:%S.000")


def aggregated(day: dt.date, second: int, payment_type: str, count: int, value: str = "10.25") -> dict:
    start, end = window(day, second)
    total = Decimal(value) * count
    return {"window_start": start, "window_end": end, "payment_type": payment_type, "payment_count": count,
            "payment_sum": float(total), "payment_avg": float(total / count), "payment_min": float(value),
            "payment_max": float(value)}


def installments(day: dt.date, second: int, payment_type: str, n: int, count: int) -> dict:
    start, end = window(day, second)
    return {"window_start": start, "window_end": end, "payment_type": payment_type, "payment_installments": n,
            "installment_count": count}


def tombstone(topic: str, record: dict) -> tuple[str, bytes, None]:
    """What Flink's upsert sink writes when every payment of a window key went away: the key, no value."""
    fields = load_registry().dataset(topic).custom_property("kafkaKey")
    return topic, json.dumps({f: record[f] for f in fields}).encode(), None


def produce(kafka: KafkaService, records: list[tuple], abort: bool = False) -> None:
    """Produce ``(topic, record)`` pairs (or ``(topic, key, None)`` tombstones) in one Kafka transaction,
    committed (or aborted)."""
    producer = Producer(kafka.client_config(**{"transactional.id": f"t-{uuid.uuid4().hex[:8]}"}))
    producer.init_transactions(30)
    producer.begin_transaction()
    for topic, record, *tomb in records:  # compacted topics: every record has its key (the contract's kafkaKey)
        if tomb:
            key, value = record, None
        elif isinstance(record, bytes):
            key, value = b"unreadable", record
        else:
            fields = load_registry().dataset(topic).custom_property("kafkaKey")
            key, value = json.dumps({f: record.get(f) for f in fields}).encode(), json.dumps(record).encode()
        producer.produce(topic, key=key, value=value)
    producer.flush(30)
    producer.abort_transaction(30) if abort else producer.commit_transaction(30)


def sink(kafka, session, group: str = GROUP, **kwargs):
    return CassandraSink(kafka.client_config(), session, group=group, **kwargs).run(until_idle=3, duration=120)


def rows(session, table: str, day: dt.date) -> dict[tuple, dict]:
    """Every row of ``table`` on ``day`` (all payment types), by primary key, without the write time."""
    query = session.prepare(f"SELECT * FROM {KEYSPACE}.{table} WHERE window_date = ? AND payment_type IN ?")
    got = session.execute(query, (day, [*TYPES, "not_defined"]))
    out = {}
    for r in got:
        d = r._asdict()
        d.pop(UPDATED_COLUMN)
        key = (d["payment_type"], d["window_start"], d.get("payment_installments"))
        out[key] = d
    return out


def dead_letters(kafka: KafkaService, topic: str) -> list[tuple[dict, bytes]]:
    return [(r.headers, r.value) for r in read_topic(kafka, topic, isolation="read_uncommitted")]


def test_the_node_answers_cql_on_loopback_only(cassandra):
    ep = cassandra.endpoint()
    assert ep is not None and ep.host == "127.0.0.1" and cassandra.health()
    with cassandra.session(metadata=False) as s:
        assert s.execute("SELECT release_version FROM system.local").one().release_version.startswith("5.0.")
    listening = {c.laddr for c in psutil.Process(cassandra.pid()).net_connections("inet") if c.status == "LISTEN"}
    assert {a.ip for a in listening} == {"127.0.0.1"}, listening
    assert {a.port for a in listening} == {ep.port, int(ep.extra["storage_port"])}, "no JMX or other listener"


def test_a_fresh_node_starts_without_driver_tracebacks(settings, caplog):
    """The first start asks whether olist_admin logs in before it exists, and health() tries it while the node
    comes up: refused logins there are the expected answer, not errors. The driver logged each as a warning and an
    error with a traceback ("Bad credentials"); four of them showed in the demo's first run."""
    fresh = engine("cassandra", settings.model_copy(update={"state_dir": settings.state_dir / "fresh"}))
    with caplog.at_level("WARNING", logger="cassandra"), running(fresh), fresh.session(metadata=False) as s:
        assert s.execute("SELECT release_version FROM system.local").one() is not None
    tracebacks = [f"{r.name} {r.levelname}: {r.getMessage()} ({r.exc_info[1]!r})" for r in caplog.records
                  if r.name.startswith("cassandra") and r.levelname in ("WARNING", "ERROR", "CRITICAL")
                  and r.exc_info]
    assert not tracebacks, "\n".join(tracebacks)


def test_no_one_gets_in_without_a_role_and_each_role_only_does_its_part(cassandra, session):
    """Password authentication and role-based authorisation: no credentials, the built-in superuser and a wrong
    password are refused; the reader reads the serving tables and cannot write them; the sink writes them and
    cannot change the schema."""
    from cassandra import Unauthorized
    from cassandra.cluster import NoHostAvailable

    from emulation.cassandra import BUILT_IN, cluster

    apply_schema(session)  # with the grants
    host, port = cassandra.contact()
    user, _ = cassandra.credentials("reader")
    for credentials in (None, BUILT_IN, (user, "not-the-password")):
        conn = cluster(host, port, timeout=10, metadata=False, credentials=credentials)
        with pytest.raises(NoHostAvailable, match=r"(?i)authentic|credentials|password|Bad"):
            conn.connect()
        conn.shutdown()
    table = f"{KEYSPACE}.{NAMES.late}"
    row = "INSERT INTO " + table + " (window_date, commit_time, order_id, payment_sequential, op) " \
          "VALUES ('2026-11-27', '2026-11-27 10:00:00+0000', '" + "a" * 32 + "', 1, 'c')"
    with cassandra.session(metadata=False, role="reader") as reader:
        reader.execute(f"SELECT * FROM {table} LIMIT 1")
        with pytest.raises(Unauthorized):
            reader.execute(row)
    with cassandra.session(metadata=False, role="sink") as sink:
        sink.execute(row)
        with pytest.raises(Unauthorized):
            sink.execute(f"DROP TABLE {table}")
        with pytest.raises(Unauthorized):
            sink.execute("CREATE KEYSPACE intruder WITH replication = {'class': 'SimpleStrategy', "
                         "'replication_factor': 1}")


def test_a_locked_login_or_a_changed_password_is_refused_at_once(cassandra, session):
    """What start() does to the built-in superuser (login off, a new password) holds from that moment: with the
    node's default 2 s caches the locked superuser still logged in for about a second (a CI failure)."""
    role, first, second = f"probe_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex, uuid.uuid4().hex

    def logs_in(password: str) -> bool:
        return cassandra.logs_in((role, password))

    session.execute(f"CREATE ROLE {role} WITH LOGIN = true AND PASSWORD = %s", (first,))
    made = time.monotonic()
    try:
        assert logs_in(first)
        session.execute(f"ALTER ROLE {role} WITH LOGIN = false")
        assert not logs_in(first), "a role whose login is off still logs in"
        session.execute(f"ALTER ROLE {role} WITH LOGIN = true")
        assert logs_in(first)
        time.sleep(max(0.0, made + 5.5 - time.monotonic()))  # Cassandra takes one password per role every 5 s
        session.execute(f"ALTER ROLE {role} WITH PASSWORD = %s", (second,))
        assert not logs_in(first), "the old password still logs in"
        assert logs_in(second)
    finally:
        session.execute(f"DROP ROLE IF EXISTS {role}")


def test_the_generated_cql_creates_the_keyspace_and_tables(session):
    assert apply_schema(session) == 4, "idempotent: a second run changes nothing"
    tables = {r.table_name for r in session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (KEYSPACE,))}
    assert tables == {AGGREGATED, INSTALLMENTS, LATE}
    kinds = {(r.column_name, r.kind, r.type) for r in session.execute(
        "SELECT column_name, kind, type FROM system_schema.columns WHERE keyspace_name = %s AND table_name = %s",
        (KEYSPACE, AGGREGATED))}
    assert {("window_date", "partition_key", "date"), ("payment_type", "partition_key", "text"),
            ("window_end", "clustering", "timestamp"), ("window_start", "clustering", "timestamp"),
            ("payment_sum", "regular", "decimal"), ("payment_avg", "regular", "double"),
            ("payment_count", "regular", "bigint")} <= kinds


def test_an_existing_keyspace_only_ever_gains_replicas(session):
    """A deployment asking for more replicas raises the keyspace to them; asking for fewer changes nothing (a
    forgotten setting never shrinks a production keyspace); an old SimpleStrategy keyspace keeps its count."""
    keyspace = "replication_probe"

    def replicas() -> dict[str, str]:
        row = session.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
                              (keyspace,)).one()
        return {k: v for k, v in row.replication.items() if k != "class"}

    session.execute(f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', "
                    "'replication_factor': 2}", timeout=60)
    try:
        assert apply_schema(session, keyspace, {"datacenter1": 1}) == 5, "SimpleStrategy became NetworkTopology"
        assert replicas() == {"datacenter1": "2"}
        apply_schema(session, keyspace, {"datacenter1": 3})
        assert replicas() == {"datacenter1": "3"}
        assert apply_schema(session, keyspace, {"datacenter1": 1}) == 4 and replicas() == {"datacenter1": "3"}
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)


def test_the_sink_writes_the_committed_records_and_dead_letters_the_bad_one(kafka, session):
    day = dt.date(2026, 11, 20)
    good = [aggregated(day, s, t, 1 + s // 10 + i) for s in (0, 10, 20) for i, t in enumerate(TYPES)]
    inst = [installments(day, s, t, n, 2) for s in (0, 10) for t in TYPES[:2] for n in (1, 10)]
    bad = aggregated(day, 30, "pix", 1)
    produce(kafka, [*((AGGREGATED, r) for r in good[:6]), (AGGREGATED, bad), *((AGGREGATED, r) for r in good[6:]),
                    (AGGREGATED, b"{not json"), *((INSTALLMENTS, r) for r in inst)])
    produce(kafka, [(AGGREGATED, aggregated(day, 40, "boleto", 99)), (INSTALLMENTS, installments(day, 40, "boleto",
                                                                                                 3, 99))], abort=True)
    report = sink(kafka, session)

    assert (report.records, report.written, report.dead_lettered) == (len(good) + 2 + len(inst),
                                                                      len(good) + len(inst), 2)
    written = rows(session, AGGREGATED, day)
    assert len(written) == len(good), "exactly the committed good records; the aborted window is not there"
    for r in good:
        row = written[(r["payment_type"], dt.datetime.fromisoformat(r["window_start"]), None)]
        assert row["payment_count"] == r["payment_count"]
        assert row["payment_sum"] == Decimal(str(r["payment_sum"]))
        assert row["window_end"] == dt.datetime.fromisoformat(r["window_end"])
    assert len(rows(session, INSTALLMENTS, day)) == len(inst)
    letters = dead_letters(kafka, f"{AGGREGATED}.dlq")
    assert [v for _, v in letters] == [json.dumps(bad).encode(), b"{not json"]
    assert letters[0][0]["olist.reason"].startswith("payment_type: 'pix' is not one of")
    assert letters[1][0]["olist.reason"].startswith("not JSON")
    assert letters[0][0]["olist.source"].startswith(f"{AGGREGATED}/0/")


def test_a_replay_or_a_crash_before_the_commit_never_double_counts(kafka, session):
    day = dt.date(2026, 11, 21)
    produce(kafka, [(AGGREGATED, aggregated(day, s, t, 3)) for s in range(0, 100, 10) for t in TYPES])

    def crash(_written: int) -> None:
        raise RuntimeError("killed after the writes, before the commit")

    with pytest.raises(RuntimeError):
        sink(kafka, session, after_write=crash)
    first = rows(session, AGGREGATED, day)
    assert len(first) == 40
    sink(kafka, session)  # the same group: reads the uncommitted batch again and rewrites it
    everything = sink(kafka, session, group=f"replay-{uuid.uuid4().hex[:6]}")  # the whole topic, from offset 0
    assert everything.records >= 40 + 12
    assert rows(session, AGGREGATED, day) == first
    assert sum(r["payment_count"] for r in first.values()) == 40 * 3
    # An updated window (Flink re-emitting it) replaces its row: the last record of a key wins, even in one batch.
    produce(kafka, [(AGGREGATED, aggregated(day, 0, "boleto", 5)), (AGGREGATED, aggregated(day, 0, "boleto", 7))])
    sink(kafka, session)
    after = rows(session, AGGREGATED, day)
    assert len(after) == 40
    assert after[("boleto", dt.datetime(2026, 11, 21), None)]["payment_count"] == 7


def test_a_tombstone_deletes_its_window_row_and_a_later_record_brings_it_back(kafka, session):
    """Flink tombstones a window key whose payments were all deleted (or moved): its row goes, the others stay;
    a tombstone whose key does not name the window whole is dead-lettered with the reason."""
    day = dt.date(2026, 11, 22)
    voucher, boleto = aggregated(day, 10, "voucher", 2), aggregated(day, 10, "boleto", 4)
    split = installments(day, 10, "voucher", 1, 2)
    produce(kafka, [(AGGREGATED, voucher), (AGGREGATED, boleto), (INSTALLMENTS, split)])
    sink(kafka, session)
    assert len(rows(session, AGGREGATED, day)) == 2 and len(rows(session, INSTALLMENTS, day)) == 1
    bad_key = (AGGREGATED, json.dumps({"window_start": voucher["window_start"], "payment_type": "voucher"}).encode(),
               None)
    produce(kafka, [tombstone(AGGREGATED, voucher), tombstone(INSTALLMENTS, split), bad_key])
    report = sink(kafka, session)
    assert (report.deleted, report.dead_lettered) == (2, 1)
    assert set(rows(session, AGGREGATED, day)) == {("boleto", dt.datetime(2026, 11, 22, 0, 0, 10), None)}
    assert rows(session, INSTALLMENTS, day) == {}
    assert any("tombstone key lacks window_end" in h.get("olist.reason", "")
               for h, _ in dead_letters(kafka, f"{AGGREGATED}.dlq"))
    produce(kafka, [(AGGREGATED, voucher)])  # the key comes back: so does its row
    sink(kafka, session)
    assert len(rows(session, AGGREGATED, day)) == 2


def test_read_windows_gives_the_last_minutes_of_every_payment_type(session):
    day = dt.date(2026, 11, 21)
    now = dt.datetime(2026, 11, 21, 0, 1, 0, tzinfo=dt.UTC)  # windows ending 00:00:10 .. 00:01:00 are in range
    got = read_windows(session, AGGREGATED, minutes=0.5, until=now)
    ends = sorted({r["window_end"] for r in got})
    assert ends == [now - dt.timedelta(seconds=s) for s in (20, 10, 0)]
    assert {r["payment_type"] for r in got} == set(TYPES) and len(got) == 12
    assert all(r["window_date"] == day for r in got)
    assert [r["window_end"] for r in got] == sorted(r["window_end"] for r in got)


def test_a_restart_keeps_the_data_and_the_port(cassandra, settings):
    before = cassandra.endpoint()
    with cassandra.session(KEYSPACE) as s:
        count = s.execute(f"SELECT count(*) FROM {AGGREGATED} WHERE window_date = %s AND payment_type = %s",
                          (dt.date(2026, 11, 21), "voucher")).one()[0]
    assert count == 10
    pid = cassandra.pid()
    written = cassandra.log_path.stat().st_size  # the stop's own lines: not an earlier test's DROP KEYSPACE race
    cassandra.stop()
    assert cassandra.pid() is None and not psutil.pid_exists(pid)
    assert port_is_free(before.host, before.port)
    with cassandra.log_path.open("rb") as log:
        log.seek(written)
        assert b" ERROR " not in log.read(), "a clean stop (drain) logs no error"
    cassandra.start()
    assert cassandra.endpoint() == before
    with cassandra.session(KEYSPACE) as s:
        assert s.execute(f"SELECT count(*) FROM {AGGREGATED} WHERE window_date = %s AND payment_type = %s",
                         (dt.date(2026, 11, 21), "voucher")).one()[0] == count
