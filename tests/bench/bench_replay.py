"""Benchmark a view's replay (docs/changing-a-view.md): how fast the Flink job recomputes its windows from the archive
(phase 1: the archive fed to a feed topic, the job's plan on it) and then from the raw topic (phase 2: the same plan
with a fresh source, its state restored), against a plain read_committed consumer of the same records (the floor,
same run). Prints changes per second, the ratio to the floor, and CPU-ms per 1,000 changes (the job's process tree;
the feed's own process for the feed).

Run with `nox -s bench` (`-- --changes 20000` for a quick look).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psutil
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from rich.table import Table

from emulation.flink import JOB, ensure_venv, job_arguments, write_kafka_properties
from emulation.jvm import fetch
from emulation.kafka import KafkaService, TopicSpec
from emulation.resources import engine
from pipeline.console import console
from pipeline.contracts import stream_names
from pipeline.lake import ArchiveLayout
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.speed.archive import RawArchiver
from pipeline.speed.cdc import topic_specs
from pipeline.speed.replay import ArchiveFeed
from pipeline.speed.topics import committed_offsets, end_offsets
from pipeline.storage import s3_location

RAW = stream_names().raw
T0 = 1_796_000_000_000
TYPES = ["credit_card", "boleto", "voucher", "debit_card"]


def changes(n: int, start: int, seed: int) -> list[tuple[bytes, bytes]]:
    """``n`` Debezium envelopes (keys, values) from change ``start`` on: new payments, updates and some deletes of
    500 orders, commit times one millisecond apart."""
    rng, out, lsn = random.Random(seed + start), [], itertools.count(start * 10 + 1)
    for i in range(start, start + n):
        order, seq = f"{rng.randrange(500):032x}", rng.randint(1, 3)
        row = {"order_id": order, "payment_sequential": seq, "payment_type": rng.choice(TYPES),
               "payment_installments": rng.randint(1, 10), "payment_value": rng.randint(100, 90_000) / 100}
        op = rng.choices("cud", weights=(6, 3, 1))[0]
        source = {"connector": "postgresql", "db": "olist", "schema": "olist", "table": "order_payments",
                  "ts_ms": T0 + i, "snapshot": "false", "txId": i, "lsn": next(lsn)}
        event = {"before": row if op == "d" else None, "after": None if op == "d" else row, "op": op,
                 "ts_ms": T0 + i + 40, "source": source}
        out.append((json.dumps({"order_id": order, "payment_sequential": seq}).encode(), json.dumps(event).encode()))
    return out


def produce(kafka: KafkaService, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer(kafka.client_config(**{"enable.idempotence": True, "linger.ms": 20}))
    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


def floor(kafka: KafkaService, topic: str) -> tuple[float, float]:
    """A plain read_committed consumer of the whole topic: changes per second and CPU-ms per 1,000."""
    consumer = Consumer(kafka.client_config(**{"group.id": f"bench-floor-{uuid.uuid4().hex[:6]}",
                                               "isolation.level": "read_committed", "enable.partition.eof": True}))
    consumer.assign([TopicPartition(topic, 0, 0)])
    me, n = psutil.Process(), 0
    cpu, started = sum(me.cpu_times()[:2]), time.perf_counter()
    while True:
        msg = consumer.poll(5)
        if msg is None or (msg.error() and msg.error().code() == KafkaError._PARTITION_EOF):
            break
        n += 1
    seconds, used = time.perf_counter() - started, sum(me.cpu_times()[:2]) - cpu
    consumer.close()
    return n / seconds, used * 1000 / n * 1000


def tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += sum(p.cpu_times()[:2])
    return total


def run_phase(cmd: list[str], kafka: KafkaService, group: str, topic: str, until: int,
              stop: bool) -> tuple[float, float]:
    """Run the job until its group committed ``until`` on ``topic``: changes per second from its first commit to that
    (its start-up left out) and CPU-ms per 1,000 changes over the same span; stopped with a savepoint if ``stop``."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ps = psutil.Process(proc.pid)
    first, started = None, time.monotonic()
    base = committed_offsets(kafka.client_config(), group, topic).get(0, 0)
    try:
        while True:
            done = committed_offsets(kafka.client_config(), group, topic).get(0, 0)
            if first is None and done > base:
                first = (time.perf_counter(), done, tree_cpu(ps))
            if done >= until:
                break
            assert proc.poll() is None, "the job died"
            assert time.monotonic() - started < 600, f"{topic}: {done} of {until} committed after 10 min"
            time.sleep(0.2)
        elapsed, cpu = time.perf_counter() - first[0], tree_cpu(ps) - first[2]
        n = until - first[1]
    finally:
        if stop:
            proc.send_signal(signal.SIGTERM)
            proc.wait(180)
        else:
            proc.kill()
            proc.wait(30)
    return n / elapsed, cpu * 1000 / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=60_000, help="changes in each phase")
    parser.add_argument("--seed", type=int, default=7)
    args, _ = parser.parse_known_args()

    settings = Settings(state_dir=PROJECT_ROOT / ".state" / "bench-replay")
    kafka, s3 = engine("kafka", settings), engine("s3", settings)
    for svc in (s3, kafka):
        svc.start()
    try:
        tag = uuid.uuid4().hex[:6]
        raw, feed = f"bench-raw-{tag}", f"bench-raw-{tag}-feed"
        config = dict(next(s for s in topic_specs() if s.name == RAW).config)
        kafka.create_topics([TopicSpec(raw, 1, config), TopicSpec(feed, 1, config)])
        sinks = {t: f"{t}-{tag}" for t in stream_names().served}
        kafka.create_topics([TopicSpec(t, 1, dict(next(s for s in topic_specs() if s.name == c).config))
                             for c, t in sinks.items()])
        console.print(f"replay bench: {args.changes:,} changes archived, then {args.changes:,} on the topic")
        produce(kafka, raw, changes(args.changes, 0, args.seed))
        loc = s3_location(settings)
        prefix = f"bench-{tag}"
        RawArchiver(kafka.client_config(), loc, raw, prefix, group=f"bench-{tag}", flush_records=20_000).run(
            until_idle=3)
        cut = end_offsets(kafka.client_config(), raw)[0]
        floor_rate, floor_cpu = floor(kafka, raw)

        me = psutil.Process()
        cpu, started = sum(me.cpu_times()[:2]), time.perf_counter()
        fed = ArchiveFeed(kafka.client_config(), ArchiveLayout(loc, prefix, raw), feed).run(until={0: cut})
        feed_rate = fed.records / (time.perf_counter() - started)
        feed_cpu = (sum(me.cpu_times()[:2]) - cpu) * 1000 / fed.records * 1000
        feed_end = end_offsets(kafka.client_config(), feed)[0] - 1  # after its last record: its commit marker

        python, jar = ensure_venv(settings.flink), next(fetch().lib("flink").glob("flink-sql-connector-kafka-*.jar"))
        state = settings.state_dir / f"flink-{tag}"
        flink = settings.flink.model_copy(update={"group_id": f"bench-{tag}", "restart_attempts": 0})
        cmd = [str(python), str(JOB), *job_arguments(flink), "--bootstrap", kafka.bootstrap_servers(),
               "--connector-jar", str(jar), "--transactional-id-prefix", f"bench-{tag}", "--kafka-properties",
               str(write_kafka_properties(kafka, state.with_suffix(".json"), principal="admin")),
               "--state-dir", str(state), *(f"--topic={c}={t}" for c, t in sinks.items()), f"--topic={RAW}={raw}"]
        plan = state / "plan.json"
        state.mkdir(parents=True, exist_ok=True)
        subprocess.run([*cmd, "--compile-plan", str(plan)], check=True, capture_output=True, timeout=300)
        group = f"bench-{tag}-events"
        archive_rate, archive_cpu = run_phase([*cmd, "--plan", str(plan), f"--topic={RAW}={feed}"], kafka, group,
                                              feed, feed_end, stop=True)
        savepoint = max((state / "savepoints").glob("*/_metadata"), key=lambda p: p.stat().st_mtime).parent

        produce(kafka, raw, changes(args.changes, args.changes, args.seed))
        end = end_offsets(kafka.client_config(), raw)[0]
        topic_rate, topic_cpu = run_phase([*cmd, "--plan", str(plan), "--fresh-source", "--start-offsets",
                                           f"0:{cut}", "--restore", str(savepoint)], kafka, group, raw, end,
                                          stop=False)
    finally:
        for svc in (kafka, s3):
            svc.stop()

    table = Table(title="Replay of a view (2 cores)")
    for col in ("stage", "changes/s", "x floor", "CPU-ms / 1,000 changes"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    table.add_row("floor: a read_committed consumer of the raw topic", f"{floor_rate:,.0f}", "1.00x",
                  f"{floor_cpu:,.0f}")
    table.add_row("archive -> feed topic (ArchiveFeed)", f"{feed_rate:,.0f}", f"{feed_rate / floor_rate:.2f}x",
                  f"{feed_cpu:,.0f}")
    table.add_row("phase 1: the job on the feed", f"{archive_rate:,.0f}", f"{archive_rate / floor_rate:.2f}x",
                  f"{archive_cpu:,.0f}")
    table.add_row("phase 2: the job on the topic, state restored", f"{topic_rate:,.0f}",
                  f"{topic_rate / floor_rate:.2f}x", f"{topic_cpu:,.0f}")
    console.print(table)
    Path(settings.state_dir / "bench-replay.json").write_text(json.dumps({
        "floor": floor_rate, "feed": feed_rate, "archive": archive_rate, "topic": topic_rate,
        "cpu_ms_per_1000": {"floor": floor_cpu, "feed": feed_cpu, "archive": archive_cpu, "topic": topic_cpu}}))


if __name__ == "__main__":
    main()
