"""The streaming path's cost per event in steady state, per engine: PostgreSQL, Connect (Debezium), Kafka, Flink,
Cassandra, the sink and the simulator (each its own process tree) and this bench.

The engines start with the speed lane supervised (the Flink job and the sink are supervisord programs, so each is
measured apart). Then: an idle phase measures every engine's CPU with nothing to do; for each rate, the simulator
(its own process) commits at that rate for a warm-up, which is discarded, and a measured phase. For the measured
phase it prints, per engine, CPU-ms per 1,000 changes with the idle CPU of the same duration subtracted, and for
the path: changes counted on the raw topic, the sustained rate, CDC lag (commit -> broker timestamp) p50/p99,
freshness (commit of a row's last change -> the poll that first shows the row's final value in Cassandra, at one
poll per second) p50/p99, and the backlog of Flink and the sink at mid-phase and at the end (bounded when it did
not grow). JVM CPU is split by thread (JIT compiler, GC, the rest). The bench polls once a second.

    python tests/bench/bench_streaming_cost.py --rates 500,1500 --warmup 30 --phase 120

Run by `nox -s bench` with shorter phases (`-- --phase 60` and so on for more).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from rich.table import Table

from emulation import resources
from pipeline import platform
from pipeline.batch.load import load_directory
from pipeline.console import console
from pipeline.contracts import stream_names
from pipeline.serving.windows import read_windows
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.speed import cdc
from pipeline.speed.services import FlinkService, SinkService
from pipeline.speed.sink import GROUP
from pipeline.speed.topics import committed_offsets, end_offsets
from tests.bench.bench_streaming import final_since, last_touch, pct
from tests.fixtures.tiny import write_tiny
from tests.kafka_helpers import read_topic
from tests.reference.windows import compute

NAMES = stream_names()
TICK = os.sysconf("SC_CLK_TCK")
JVM_GROUPS = (("JIT compiler", ("C1 CompilerThre", "C2 CompilerThre", "C1 Compiler", "C2 Compiler")),
              ("GC", ("GC Thread", "VM Thread", "G1 ", "Gang worker", "VM Periodic")))


def tree_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of a process, its living descendants and the children they reaped."""
    total = 0.0
    with contextlib.suppress(psutil.Error, TypeError, ValueError):
        root = psutil.Process(pid)
        for proc in (root, *root.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
    return total


def java_threads(pid: int | None) -> dict[str, float]:
    """CPU seconds of a JVM's threads (the java process under ``pid``) by group: JIT compiler, GC, other."""
    out = {name: 0.0 for name, _ in JVM_GROUPS} | {"other": 0.0}
    with contextlib.suppress(psutil.Error, TypeError, ValueError):
        root = psutil.Process(pid)
        javas = [p for p in (root, *root.children(recursive=True)) if p.name() == "java"]
        for java in javas:
            for task in Path(f"/proc/{java.pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    comm = (task / "comm").read_text().strip()
                    stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
                    seconds = (int(stat[11]) + int(stat[12])) / TICK
                    group = next((name for name, prefixes in JVM_GROUPS if comm.startswith(prefixes)), "other")
                    out[group] += seconds
    return out


PG_ROLES = (("walsender (logical decoding)", "postgres: walsender"), ("WAL writer", "postgres: walwriter"),
            ("autovacuum", "postgres: autovacuum"))


def postgres_roles(pid: int | None) -> dict[str, float]:
    """CPU seconds of a PostgreSQL cluster's processes by role: the walsender that decodes for Debezium, the WAL
    writer, autovacuum, client backends (the simulator's and the bench's sessions), the rest (postmaster,
    checkpointer, backends that exited: reaped children)."""
    out = {name: 0.0 for name, _ in PG_ROLES} | {"client backends": 0.0, "other": 0.0}
    with contextlib.suppress(psutil.Error, TypeError, ValueError):
        root = psutil.Process(pid)
        for proc in (root, *root.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                title, t = " ".join(proc.cmdline()), proc.cpu_times()
                role = next((name for name, prefix in PG_ROLES if title.startswith(prefix)), None)
                if role is None:
                    role = "client backends" if "(" in title and title.startswith("postgres: ") else "other"
                out[role] += t.user + t.system + (t.children_user + t.children_system if proc is root else 0.0)
    return out


class Sampler:
    """CPU of every engine, now (one call per phase boundary, not a poller)."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids

    def snapshot(self) -> tuple[float, dict[str, float], dict[str, dict[str, float]]]:
        cpu = {name: tree_cpu(pid) if name != "this bench" else sum(os.times()[:2])
               for name, pid in self.pids.items()}
        jvm = {name: java_threads(pid) for name, pid in self.pids.items()
               if name in ("Connect (Debezium)", "Kafka", "Flink", "Cassandra")}
        jvm["PostgreSQL"] = postgres_roles(self.pids["PostgreSQL"])
        return time.monotonic(), cpu, jvm


class Freshness(threading.Thread):
    """Once a second: the aggregated rows Cassandra shows, kept as (first time seen, value) transitions."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="bench-freshness", daemon=True)
        self.settings, self.stop = settings, threading.Event()
        self.rows: dict[tuple, list[tuple[float, tuple]]] = {}

    def run(self) -> None:
        service = resources.engine("cassandra", self.settings)
        while not self.stop.is_set():  # the sink makes the keyspace when it starts
            try:
                with service.session(NAMES.keyspace, role="reader", timeout=30):
                    break
            except Exception:
                time.sleep(1)
        with service.session(NAMES.keyspace, role="reader", timeout=30) as session:
            while not self.stop.wait(1.0):
                with contextlib.suppress(Exception):
                    until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
                    for r in read_windows(session, NAMES.aggregated, minutes=30, until=until):
                        value = (r["payment_count"], r["payment_sum"], r["payment_min"], r["payment_max"],
                                 r["payment_avg"])
                        seen = self.rows.setdefault((r["window_start"].replace(tzinfo=None), r["payment_type"]), [])
                        if not seen or seen[-1][1] != value:
                            seen.append((time.time(), value))


def backlog(settings: Settings) -> tuple[int, int]:
    """Records Flink and the sink have not committed yet (raw topic; windowed topics summed)."""
    config = resources.engine("kafka", settings).client_config()
    raw_end = sum(end_offsets(config, NAMES.raw).values())
    flink = sum(committed_offsets(config, f"{settings.flink.group_id}-events", NAMES.raw).values())
    sink = 0
    for topic in NAMES.windowed:
        sink += sum(end_offsets(config, topic).values()) - sum(committed_offsets(config, GROUP, topic).values())
    return max(raw_end - flink, 0), max(sink, 0)


def run_rate(settings: Settings, sampler: Sampler, rate: float, warmup: float, phase: float, seed: int) -> dict:
    env = {**os.environ, "OLIST_STATE_DIR": str(settings.state_dir), "OLIST_PG_SCHEMA": settings.pg_schema}
    simulator = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "simulate", "--rate", str(rate),
                                  "--duration", str(warmup + phase + 2), "--seed", str(seed)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sampler.pids["simulator"] = simulator.pid
    config = resources.engine("kafka", settings).client_config()
    time.sleep(warmup)
    start_offsets, before = end_offsets(config, NAMES.raw), sampler.snapshot()
    start_wall = time.time()
    time.sleep(phase / 2)
    mid = backlog(settings)
    time.sleep(phase / 2)
    after, end_offsets_ = sampler.snapshot(), end_offsets(config, NAMES.raw)
    end_wall = time.time()
    end = backlog(settings)
    simulator.wait(60)
    records = [r for r in read_topic(resources.engine("kafka", settings), NAMES.raw, timeout=120, start=start_offsets)
               if r.offset < end_offsets_[r.partition]]
    values = [(r.timestamp_ms, json.loads(r.value)) for r in records if r.value is not None]
    events = [event for _, event in values]
    lags = [broker - event["source"]["ts_ms"] for broker, event in values]
    return {"rate": rate, "changes": len(events), "seconds": after[0] - before[0], "before": before, "after": after,
            "lags": lags, "mid": mid, "end": end, "window": (start_wall, end_wall)}


# Cost levers, each measured on its own against the baseline in the same run (`--levers a,b`): settings changes.
# Connect batching and the WAL writer delay are the defaults now ("no-..." measures without one); mini-batch is not.
LEVERS: dict[str, dict] = {
    "no-connect-batching": {"connect": {"linger_ms": 5, "batch_size": 16_384, "offset_flush_interval_ms": 1000}},
    "no-wal-writer-10ms": {"pg_wal_writer_delay_ms": 200},
    "flink-minibatch": {"flink": {"mini_batch_latency_ms": 500}},
    "checkpoint-1s": {"flink": {"checkpoint_interval_seconds": 1.0}},
    "checkpoint-5s": {"flink": {"checkpoint_interval_seconds": 5.0}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="500,1500", help="changes/s, comma separated")
    parser.add_argument("--warmup", type=float, default=20)
    parser.add_argument("--phase", type=float, default=60)
    parser.add_argument("--idle", type=float, default=20)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--levers", default="", help=f"comma separated, each after the baseline: {', '.join(LEVERS)}")
    args, _ = parser.parse_known_args()
    rates = [float(r) for r in args.rates.split(",")]
    levers = [name for name in args.levers.split(",") if name]
    unknown = [name for name in levers if name not in LEVERS]
    if unknown:
        parser.error(f"unknown lever {unknown[0]!r}; known: {', '.join(LEVERS)}")
    base = Settings(state_dir=PROJECT_ROOT / ".state" / "bench-streaming-cost")
    summaries = {}
    for name in ["baseline", *levers]:
        settings = base.replace(**LEVERS[name]) if name in LEVERS else base
        console.rule(f"[bold]Streaming cost in steady state ({name}): {', '.join(f'{r:g}' for r in rates)} "
                     f"changes/s, {args.warmup:g} s warm-up + {args.phase:g} s measured each")
        summaries[name] = report(*measure(settings, rates, args), settings, args)
    if levers:
        compare(summaries, rates)


def measure(settings: Settings, rates: list[float], args: argparse.Namespace):
    """Fresh engines with these settings, their idle CPU, then each rate's warm-up and measured phase."""
    platform.down(settings, purge=True)
    try:
        platform.up(settings, ["postgres", "kafka", "connect", "cassandra"])
        data = settings.state_dir / "data"
        load_directory(write_tiny(data), resources.engine("postgres", settings).conninfo(), settings.pg_schema)
        cdc.start(settings)
        platform.up(settings, ["flink", "serve"])
        pids = {"PostgreSQL": resources.engine("postgres", settings).pid(),
                "Connect (Debezium)": resources.engine("connect", settings).pid(),
                "Kafka": resources.engine("kafka", settings).pid(), "Flink": FlinkService(settings).pid(),
                "Cassandra": resources.engine("cassandra", settings).pid(), "sink": SinkService(settings).pid(),
                "this bench": os.getpid()}
        sampler = Sampler(pids)
        freshness = Freshness(settings)
        freshness.start()
        time.sleep(10)  # the job's first checkpoints, the sink's first poll
        idle_start = sampler.snapshot()
        time.sleep(args.idle)
        idle_end = sampler.snapshot()
        idle = {k: (idle_end[1][k] - idle_start[1][k]) / (idle_end[0] - idle_start[0]) for k in pids}
        runs = [run_rate(settings, sampler, rate, args.warmup, args.phase, args.seed + i)
                for i, rate in enumerate(rates)]
        time.sleep(15)  # the last windows reach Cassandra
        freshness.stop.set()
        freshness.join(10)
        raw_records = read_topic(resources.engine("kafka", settings), NAMES.raw, timeout=120)
        events_all = [json.loads(r.value) for r in raw_records if r.value is not None]
    finally:
        platform.down(settings, purge=True)
    return runs, idle, events_all, freshness


def compare(summaries: dict[str, dict], rates: list[float]) -> None:
    """Each lever against the baseline of this run: CPU per engine and for the path as a ratio, lag and freshness."""
    base = summaries["baseline"]
    table = Table(title="Levers: CPU per 1,000 changes as a ratio to the baseline (below 1.00 is cheaper)")
    table.add_column("lever")
    table.add_column("measure")
    for rate in rates:
        table.add_column(f"at {rate:g}/s", justify="right")
    for name, summary in summaries.items():
        if name == "baseline":
            continue
        for engine in ["the path", *summary["per_engine"]]:
            mine = summary["path"] if engine == "the path" else summary["per_engine"][engine]
            theirs = base["path"] if engine == "the path" else base["per_engine"][engine]
            table.add_row(name, engine, *[f"{m / t:.2f}" if abs(t) > 5 else "-" for m, t in zip(mine, theirs,
                                                                                             strict=True)])
        for measure in ("CDC lag p99 (ms)", "freshness p99 (s)"):
            table.add_row(name, measure, *[f"{m:,.1f} vs {t:,.1f}" for m, t in zip(summary[measure], base[measure],
                                                                                 strict=True)])
    console.print(table)


def report(runs: list[dict], idle: dict[str, float], events: list[dict], freshness: Freshness, settings: Settings,
           args: argparse.Namespace) -> dict:
    """Print the tables of one measured configuration; return its figures for :func:`compare`."""
    window_ms = int(settings.flink.window_seconds * 1000)
    want = compute(events, window_ms, int(settings.flink.watermark_delay_seconds * 1000)).aggregated
    touched = last_touch(events, window_ms)
    table = Table(title="CPU-ms per 1,000 changes, idle subtracted (steady state)")
    table.add_column("engine")
    table.add_column("idle CPU-ms/s", justify="right")
    for run in runs:
        table.add_column(f"at {run['rate']:g}/s", justify="right")
    engines = list(runs[0]["after"][1])
    totals = [0.0 for _ in runs]  # the path: every engine and the sink (not the simulator, not this bench)
    per_engine: dict[str, list[float]] = {}
    for engine in engines:
        cells = []
        for i, run in enumerate(runs):
            used = run["after"][1].get(engine, 0.0) - run["before"][1].get(engine, 0.0)
            net = used - idle.get(engine, 0.0) * run["seconds"]
            per = 1e6 * net / max(run["changes"], 1)
            totals[i] += per if engine not in ("simulator", "this bench") else 0.0
            per_engine.setdefault(engine, []).append(per)
            cells.append(f"{per:,.0f}")
        table.add_row(engine, f"{1000 * idle.get(engine, 0.0):,.0f}", *cells)
    table.add_row("[bold]the path (engines + sink)", "", *[f"[bold]{t:,.0f}" for t in totals])
    console.print(table)

    split = Table(title="CPU-ms per 1,000 changes by JVM thread group and by PostgreSQL process (idle not subtracted)")
    split.add_column("engine")
    split.add_column("part")
    for run in runs:
        split.add_column(f"at {run['rate']:g}/s", justify="right")
    for engine, groups in runs[0]["after"][2].items():
        for group in groups:
            used = [run["after"][2][engine][group] - run["before"][2][engine][group] for run in runs]
            split.add_row(engine, group, *[f"{1e6 * u / max(run['changes'], 1):,.0f}"
                                           for u, run in zip(used, runs, strict=True)])
    console.print(split)

    path = Table(title="The path at each rate (measured phase)")
    for col in ("measure", *[f"at {r['rate']:g}/s" for r in runs]):
        path.add_column(col, justify="left" if col == "measure" else "right")
    fresh_by_run = []
    for run in runs:
        start, end = run["window"]
        fresh = []
        for key, w in want.items():
            commit = touched.get(key)
            if commit is None or not (start <= commit / 1000 <= end):
                continue
            shown = final_since(freshness.rows.get(key, []), w)
            if shown is not None:
                fresh.append(shown - commit / 1000)
        fresh_by_run.append(fresh)
    rows = [
        ("changes counted on the raw topic", [f"{r['changes']:,}" for r in runs]),
        ("sustained rate (changes/s)", [f"{r['changes'] / r['seconds']:,.0f}" for r in runs]),
        ("CDC lag p50 / p99 (ms)", [f"{pct(r['lags'], 50):,.0f} / {pct(r['lags'], 99):,.0f}" for r in runs]),
        ("freshness p50 / p99 (s, 1 s polls)", [f"{pct(f, 50):.1f} / {pct(f, 99):.1f}" for f in fresh_by_run]),
        ("backlog Flink / sink, mid-phase", [f"{r['mid'][0]:,} / {r['mid'][1]:,}" for r in runs]),
        ("backlog Flink / sink, end", [f"{r['end'][0]:,} / {r['end'][1]:,}" for r in runs]),
        ("backlog bounded", ["yes" if r["end"][0] <= max(2 * r["mid"][0], r["rate"] * 5) else "no: growing"
                             for r in runs]),
    ]
    for name, cells in rows:
        path.add_row(name, *cells)
    console.print(path)
    console.print(f"{psutil.cpu_count()} cores; idle measured over {args.idle:g} s; warm-up {args.warmup:g} s "
                  f"discarded; budget: 400 CPU-ms per 1,000 changes for the path "
                  "(engines + sink). A small negative figure is an engine that used less than its idle rate (noise).")
    return {"path": totals, "per_engine": per_engine, "CDC lag p99 (ms)": [pct(r["lags"], 99) for r in runs],
            "freshness p99 (s)": [pct(f, 99) for f in fresh_by_run]}


if __name__ == "__main__":
    main()
