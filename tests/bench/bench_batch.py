"""Benchmark the batch lane at a scale (1.0 = the full data set), each against a baseline in the same run:

- ingestion: `olist ingest` (PostgreSQL -> S3 Parquet) against dlt's `sql_database` source writing Parquet
  to the same S3 endpoint (a tool users pick for this job); both start from an empty prefix;
- the full `dbt build` (models and tests) on DuckDB over that bronze, with its bronze refresh.

Run with `nox -s bench` (`-- --scale 0.1 --rounds 1` for a quick look).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

from rich.table import Table

from emulation.postgres import PostgresService
from emulation.resources import engine
from pipeline.batch.generator import generate
from pipeline.batch.ingest import ingest
from pipeline.batch.load import load_directory
from pipeline.batch.transform import refresh_bronze, run_dbt
from pipeline.console import console
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.storage import s3_location


def dlt_ingest(settings: Settings, pg: PostgresService, prefix: str) -> float:
    """dlt's sql_database (pyarrow backend) -> filesystem destination, Parquet, same S3 endpoint."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    from dlt.destinations import filesystem
    from dlt.sources.sql_database import sql_database

    loc = s3_location(settings)
    ep = pg.endpoint()
    url = (f"postgresql+psycopg://{ep.extra['user']}:{ep.extra['password']}@{ep.host}:{ep.port}/"
           f"{ep.extra['dbname']}")
    dest = filesystem(bucket_url=f"s3://{loc.bucket}/{prefix}", credentials={
        "aws_access_key_id": loc.access_key_id, "aws_secret_access_key": loc.secret_access_key,
        "endpoint_url": loc.endpoint_url, "region_name": loc.region})
    pipeline = dlt.pipeline(pipeline_name=f"bench_{uuid.uuid4().hex[:6]}", destination=dest, dataset_name="olist",
                            pipelines_dir=str(settings.state_dir / "dlt"))
    t0 = time.perf_counter()
    pipeline.run(sql_database(url, schema=settings.pg_schema, backend="pyarrow"), loader_file_format="parquet")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2)
    args, _ = parser.parse_known_args()  # one nox posargs list feeds every benchmark

    state = PROJECT_ROOT / ".state" / "bench"
    settings = Settings(state_dir=state, data_dir=state / f"data-{args.scale}-{args.seed}")
    if not (settings.data_dir / "olist_orders_dataset.csv").exists():
        generate(scale=args.scale, seed=args.seed, out_dir=settings.data_dir)
    pg, s3 = engine("postgres", settings), engine("s3", settings)
    pg.start()
    s3.start()
    try:
        console.rule(f"[bold]Batch lane benchmark, scale {args.scale}")
        summary = load_directory(settings.data_dir, pg.conninfo(), settings.pg_schema)
        console.print(f"loaded {summary.loaded:,} rows into PostgreSQL")
        loc = s3_location(settings)
        ours, theirs = [], []
        for rnd in range(args.rounds):
            t0 = time.perf_counter()
            results = ingest(pg.conninfo(), loc, settings.pg_schema, f"bench-ours-{rnd}")
            ours.append(time.perf_counter() - t0)
            assert all(r.reconciled for r in results)
            rows = sum(r.copied for r in results)
            console.print(f"round {rnd + 1}: olist ingest {ours[-1]:.2f} s ({rows:,} rows)")
            theirs.append(dlt_ingest(settings, pg, f"bench-dlt-{rnd}"))
            console.print(f"round {rnd + 1}: dlt sql_database -> parquet {theirs[-1]:.2f} s")
        bench_settings = settings.model_copy(update={"bronze_prefix": "bench-ours-0"})
        t0 = time.perf_counter()
        refresh_bronze(bench_settings)
        refresh = time.perf_counter() - t0
        t0 = time.perf_counter()
        run = run_dbt(["--quiet", "build"], bench_settings)
        build = time.perf_counter() - t0
    finally:
        s3.stop()
        pg.stop()
    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    table = Table(title=f"Batch lane, scale {args.scale} ({rows:,} rows), median of {args.rounds} rounds")
    for col in ("step", "seconds", "rows/s", "ratio"):
        table.add_column(col, justify="left" if col == "step" else "right")
    table.add_row("dlt sql_database -> S3 Parquet (baseline)", f"{theirs_s:.2f}", f"{rows / theirs_s:,.0f}", "1.00x")
    table.add_row("olist ingest -> S3 Parquet", f"{ours_s:.2f}", f"{rows / ours_s:,.0f}",
                  f"{theirs_s / ours_s:.2f}x faster")
    table.add_row("bronze refresh into DuckDB", f"{refresh:.2f}", "-", "-")
    table.add_row(f"dbt build on DuckDB ({len(run.results)} nodes, {'pass' if run.success else 'FAIL'})",
                  f"{build:.2f}", "-", "target < 30 s")
    console.print(table)
    console.print(f"ingestion {theirs_s / ours_s:.2f}x faster than dlt (target 2x); dbt build {build:.1f} s")


if __name__ == "__main__":
    main()
