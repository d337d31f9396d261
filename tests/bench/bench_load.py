"""Benchmark: generator rows/s at a scale, then our validating loader against the floor, `psql \\copy`
of the same files into the same (empty) tables with no validation, in the same process and server.

Run with `nox -s bench` (`-- --scale 0.1 --rounds 1` for a quick look). Prints ratios, not verdicts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time

import psycopg
from rich.table import Table

from emulation.postgres import PostgresService, find_bin_dir
from emulation.resources import engine
from pipeline.batch.generator import generate
from pipeline.batch.load import apply_schema, load_directory
from pipeline.console import console
from pipeline.contracts import load_registry
from pipeline.settings import PROJECT_ROOT, Settings


def reset_schema(conninfo: str, schema: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"drop schema if exists {schema} cascade")
        apply_schema(conn, load_registry(), schema)
        conn.execute("checkpoint")


def floor_load(pg: PostgresService, settings: Settings, data_dir, schema: str) -> float:
    """psql \\copy of every file, straight into the tables: PostgreSQL's own CSV parser, no checks."""
    ep = pg.endpoint()
    script = "\n".join(
        f"\\copy {schema}.{ds.name} ({', '.join(ds.column_names)}) from '{data_dir / ds.source_file}' "
        "with (format csv, header true)"
        for ds in load_registry().source_tables())
    env = {**os.environ, "PGPASSWORD": ep.extra["password"]}
    psql = find_bin_dir(settings.pg_bin_dir) / "psql"
    t0 = time.perf_counter()
    subprocess.run([str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", ep.host, "-p", str(ep.port),
                    "-U", ep.extra["user"], "-d", ep.extra["dbname"]], input=script, text=True, env=env,
                   check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each loader, alternating")
    args, _ = parser.parse_known_args()  # one nox posargs list feeds every benchmark

    state = PROJECT_ROOT / ".state" / "bench"
    settings = Settings(state_dir=state, data_dir=state / f"data-{args.scale}-{args.seed}")
    console.rule(f"[bold]Generator, scale {args.scale}")
    gen = generate(scale=args.scale, seed=args.seed, out_dir=settings.data_dir)
    gen_rate = gen.rows_per_second
    console.print(f"generated {gen.total_rows:,} rows in {gen.elapsed_seconds:.2f} s = {gen_rate:,.0f} rows/s")

    pg = engine("postgres", settings)
    pg.start()
    conninfo = pg.conninfo()
    rows = gen.total_rows
    floor_times, ours_times = [], []
    try:
        for rnd in range(args.rounds):
            console.rule(f"[bold]Round {rnd + 1}/{args.rounds}")
            reset_schema(conninfo, "bench_floor")
            floor_times.append(floor_load(pg, settings, settings.data_dir, "bench_floor"))
            console.print(f"floor (psql \\copy, no validation): {floor_times[-1]:.2f} s")
            reset_schema(conninfo, "bench_ours")
            summary = load_directory(settings.data_dir, conninfo, "bench_ours")
            ours_times.append(summary.seconds)
            console.print(f"olist load (validating, quarantine): {ours_times[-1]:.2f} s, "
                          f"{summary.loaded:,} loaded, {summary.quarantined:,} quarantined")
    finally:
        pg.stop()
    floor, ours = statistics.median(floor_times), statistics.median(ours_times)
    console.print("rounds (s): floor " + ", ".join(f"{t:.2f}" for t in floor_times)
                  + "; olist load " + ", ".join(f"{t:.2f}" for t in ours_times))
    table = Table(title=f"Load benchmark, scale {args.scale} ({rows:,} rows), median of {args.rounds} rounds")
    for col in ("run", "seconds", "rows/s", "ratio to floor"):
        table.add_column(col, justify="right" if col != "run" else "left")
    table.add_row("floor: psql \\copy", f"{floor:.2f}", f"{rows / floor:,.0f}", "1.00x")
    table.add_row("olist load", f"{ours:.2f}", f"{rows / ours:,.0f}", f"{ours / floor:.2f}x")
    table.add_row("olist generate", f"{gen.elapsed_seconds:.2f}", f"{gen_rate:,.0f}", "-")
    console.print(table)
    verdict = "within" if ours / floor <= 1.3 else "over"
    console.print(f"load ratio {ours / floor:.2f}x the floor's time ({verdict} the 1.3x target)")


if __name__ == "__main__":
    main()
