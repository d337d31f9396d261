"""The batch lane's steps as library calls returning typed reports: generate, load, ingest, transform, and the
whole lane in one (what the demo runs). The CLI renders the reports; tests assert on them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.batch.generator import GenerateResult
from pipeline.batch.ingest import TableResult
from pipeline.batch.load import LoadSummary
from pipeline.batch.transform import DbtRun
from pipeline.progress import SILENT, Progress
from pipeline.resources import running_postgres
from pipeline.settings import Settings
from pipeline.totals import Total


def generate(settings: Settings, scale: float | None = None, seed: int | None = None, out: Path | None = None,
             progress: Progress = SILENT) -> GenerateResult:
    """The nine CSV files in the Kaggle originals' format (defaults from the settings)."""
    from pipeline.batch.generator import generate as write

    def on_table(table: str, done: int, total: int) -> None:
        progress.update(f"generate {table}", description=table, completed=done, total=total)

    return write(scale=settings.scale if scale is None else scale, seed=settings.seed if seed is None else seed,
                 out_dir=out or settings.data_dir, progress=on_table)


def load(settings: Settings, data_dir: Path | None = None, progress: Progress = SILENT) -> LoadSummary:
    """The CSV files into PostgreSQL (COPY), bad rows quarantined."""
    from pipeline.batch.load import load_directory

    pg = running_postgres(settings)
    progress.update("load", description="loading", total=9)

    def on_table(table: str, stage: str) -> None:
        progress.update("load", description=f"{stage} {table}", advance=1 if stage == "done" else 0)

    return load_directory(data_dir or settings.data_dir, pg.conninfo(), settings.pg_schema, progress=on_table)


@dataclass
class IngestReport:
    uri: str
    tables: list[TableResult]

    copied = Total("tables", "copied")
    bronze_rows = Total("tables", "bronze_rows")
    seconds = Total("tables", "seconds")
    orphans_removed = Total("tables", "orphans_removed")

    @property
    def reconciled(self) -> bool:
        return all(r.reconciled for r in self.tables)


def ingest(settings: Settings, tables: list[str] | None = None, progress: Progress = SILENT) -> IngestReport:
    """New rows from PostgreSQL to S3 bronze Parquet, committed by manifest, reconciled."""
    from pipeline import provision
    from pipeline.batch.ingest import ingest as copy
    from pipeline.storage import s3_location

    pg = running_postgres(settings)
    provision.ensure(settings, "postgres")  # a table behind its contract: one line naming the step, not a traceback
    loc = s3_location(settings)
    progress.update("ingest", description="ingesting", total=len(tables) if tables else 9)
    results = copy(pg.conninfo(), loc, settings.pg_schema, settings.bronze_prefix, tables,
                   progress=lambda name: progress.update("ingest", description=f"ingest {name}", advance=1))
    return IngestReport(loc.uri(settings.bronze_prefix) + "/", results)


@dataclass
class TransformReport:
    target: str
    run: DbtRun
    seconds: float
    bronze_rows: dict[str, int] | None = None  # refreshed into DuckDB from S3 (None: the target loads its own)
    docs: Path | None = None
    warehouse: Path | None = None

    @property
    def success(self) -> bool:
        return self.run.success

    @property
    def models(self) -> int:
        return sum(1 for r in self.run.results if r[0].startswith("model."))

    @property
    def tests(self) -> int:
        return sum(1 for r in self.run.results if r[0].startswith(("test.", "unit_test.")))

    @property
    def failed(self) -> list[tuple[str, str, float, str]]:
        return [r for r in self.run.results if r[1] not in ("success", "pass", "skipped")]


def transform(settings: Settings, target: str = "duckdb", select: str | None = None, docs: bool = True,
              extra: list[str] | None = None, progress: Progress = SILENT) -> TransformReport:
    """Bronze refreshed from S3 (DuckDB), then ``dbt build`` bronze -> silver -> gold and the lineage docs."""
    from pipeline.batch.transform import refresh_bronze, run_dbt

    bronze = None
    if target == "duckdb":
        progress.update("bronze", description="refreshing bronze from S3", total=None)
        bronze = refresh_bronze(settings)
        progress.update("bronze", description="bronze refreshed", total=1, completed=1)
    command = ["--quiet", "build", *(["--select", select] if select else []), *(extra or [])]
    started = time.perf_counter()
    progress.update("dbt", description="dbt build", total=None)

    def on_node(name: str, status: str) -> None:
        progress.update("dbt", description=f"dbt {name.split('.')[-1][:30]}", advance=1)

    run = run_dbt(command, settings, target, on_node)
    progress.update("dbt", total=len(run.results), completed=len(run.results))
    report = TransformReport(target, run, time.perf_counter() - started, bronze,
                             warehouse=settings.warehouse_path if target == "duckdb" else None)
    if docs and run.success and run_dbt(["--quiet", "docs", "generate"], settings, target).success:
        report.docs = settings.dbt_target_dir(target) / "index.html"
    return report


def headline_kpis(path: Path) -> dict[str, Any]:
    """The gold headline KPIs (orders, items, products, sales, freight, on-time rate)."""
    import duckdb

    # dbt, run in this process, may still hold the file open: connect with the same (default) settings.
    with duckdb.connect(str(path)) as con:
        cur = con.execute("select * from gold.mart_headline_kpis")
        names = [d[0] for d in cur.description]
        return dict(zip(names, cur.fetchone(), strict=True))


@dataclass
class BatchReport:
    load: LoadSummary
    ingest: IngestReport
    transform: TransformReport
    kpis: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.ingest.reconciled and self.transform.success


def run_batch(settings: Settings, data_dir: Path | None = None, progress: Progress = SILENT) -> BatchReport:
    """Load, ingest and transform, with the gold KPIs read back."""
    loaded = load(settings, data_dir, progress)
    ingested = ingest(settings, progress=progress)
    built = transform(settings, progress=progress)
    kpis = headline_kpis(settings.warehouse_path) if built.success else {}
    return BatchReport(loaded, ingested, built, kpis)
