"""Benchmark CDC: the simulator commits payment changes in PostgreSQL at a target rate; a consumer reads
them from `olist.order_payments`. Prints the sustained rate on the topic against the commit rate (the
baseline, same run) and the lag from commit (source.ts_ms) to the event on the topic (its Kafka
timestamp): p50 and p99.

Run with `nox -s bench` (`-- --rate 2000 --duration 10` for a quick look).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

from confluent_kafka import Consumer, TopicPartition
from rich.table import Table

from emulation.kafka import KafkaService
from emulation.resources import engine
from pipeline.console import console
from pipeline.contracts import stream_names
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.speed import cdc
from pipeline.speed.simulate import simulate

TOPIC = stream_names().raw


def settle(kafka: KafkaService, quiet: float = 3.0, timeout: float = 300) -> dict[int, int]:
    """Wait until the topic stops growing (the initial snapshot is done); return its end offsets."""
    consumer = Consumer(kafka.client_config(**{"group.id": "bench-settle"}))
    partitions = consumer.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
    last, since, deadline = None, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1] for p in partitions}
        if ends != last:
            last, since = ends, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.5)
    consumer.close()
    return last or {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--seed", type=int, default=11)
    args, _ = parser.parse_known_args()

    settings = Settings(state_dir=PROJECT_ROOT / ".state" / "bench")
    services = [engine("postgres", settings), engine("kafka", settings), engine("connect", settings)]
    for svc in services:
        svc.start()
    try:
        cdc.start(settings)
        start_offsets = settle(services[1])
        consumer = Consumer(services[1].client_config(**{"group.id": "bench-cdc", "enable.auto.commit": False}))
        consumer.assign([TopicPartition(TOPIC, p, o) for p, o in start_offsets.items()])
        arrivals: list[float] = []
        lags: list[float] = []
        done = threading.Event()

        def consume() -> None:
            idle_since = None
            while True:
                msg = consumer.poll(0.2)
                if msg is None or msg.error() or msg.value() is None:
                    if done.is_set():
                        idle_since = idle_since or time.monotonic()
                        if time.monotonic() - idle_since > 5:
                            return
                    continue
                idle_since = None
                event = json.loads(msg.value())
                if event["source"].get("snapshot") not in (None, "false", False):
                    continue  # a straggler of the initial snapshot, not a change the simulator made
                arrivals.append(time.monotonic())
                lags.append(msg.timestamp()[1] - event["source"]["ts_ms"])

        reader = threading.Thread(target=consume, daemon=True)
        reader.start()
        console.rule(f"[bold]CDC benchmark: {args.rate:g} changes/s for {args.duration:g} s")
        report = simulate(engine("postgres", settings).conninfo(), settings.pg_schema, args.rate, args.duration,
                          args.seed)
        done.set()
        reader.join(timeout=120)
        consumer.close()
    finally:
        cdc.stop(settings)
        for svc in reversed(services):
            svc.stop()
    events = len(arrivals)
    span = (arrivals[-1] - arrivals[0]) if events > 1 else float("nan")
    topic_rate = events / span if events > 1 else 0.0
    lags.sort()
    p50 = statistics.median(lags) if lags else float("nan")
    p99 = lags[int(0.99 * (len(lags) - 1))] if lags else float("nan")
    table = Table(title="CDC: PostgreSQL commit -> Debezium -> olist.order_payments")
    for col in ("measure", "value"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    table.add_row("target rate (changes/s)", f"{args.rate:,.0f}")
    table.add_row("committed by the simulator (baseline, changes/s)", f"{report.achieved_rate:,.0f}")
    table.add_row("events on the topic", f"{events:,} of {report.changes:,} changes")
    table.add_row("sustained rate on the topic (events/s)", f"{topic_rate:,.0f}")
    table.add_row("topic rate / commit rate", f"{topic_rate / report.achieved_rate:.2f}x")
    table.add_row("lag commit -> topic p50 (ms)", f"{p50:,.0f}")
    table.add_row("lag commit -> topic p99 (ms)", f"{p99:,.0f}")
    console.print(table)
    bottleneck = "the simulator (PostgreSQL commits)" if report.achieved_rate < 0.9 * args.rate else "Debezium/Kafka"
    console.print(f"target: 5,000 changes/s with p99 under 1,000 ms; bottleneck here: {bottleneck}")


if __name__ == "__main__":
    main()
