"""Load the nine Olist CSV files into PostgreSQL: contract-generated DDL, validation, COPY, quarantine."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.contracts import Dataset, Registry, load_registry
from pipeline.contracts.render_postgres import render_schema
from pipeline.loader.postgres import write_quarantine, write_table
from pipeline.loader.reader import BadRecord, LoadError, read_source
from pipeline.loader.validate import Validated, validate

__all__ = ["FileResult", "LoadError", "LoadSummary", "apply_schema", "load_directory"]

QUARANTINE_TABLE = "load_quarantine"


@dataclass
class FileResult:
    table: str
    source_file: str
    read: int
    loaded: int
    inserted: int
    updated: int
    quarantined: int
    seconds: float
    bad: list[BadRecord] = field(default_factory=list, repr=False)


@dataclass
class LoadSummary:
    run_id: str
    results: list[FileResult]
    seconds: float

    @property
    def quarantined(self) -> int:
        return sum(r.quarantined for r in self.results)

    @property
    def loaded(self) -> int:
        return sum(r.loaded for r in self.results)

    @property
    def read(self) -> int:
        return sum(r.read for r in self.results)


def apply_schema(conn: psycopg.Connection, registry: Registry, schema: str) -> None:
    """Create the schema and every contract table (idempotent)."""
    conn.execute(render_schema(registry, schema))


def _prepare(data_dir: Path, ds: Dataset, parent_keys: dict[str, pa.Array]) -> Validated:
    source = read_source(data_dir / (ds.source_file or ""), ds)
    return validate(source, ds, parent_keys)


def _referenced_columns(tables: list[Dataset]) -> set[str]:
    return {f"{t}.{c}" for ds in tables for col in ds.columns for t, c in col.references}


def load_directory(
    data_dir: Path,
    conninfo: str,
    schema: str = "olist",
    registry: Registry | None = None,
    progress: Callable[[str, str], None] | None = None,
) -> LoadSummary:
    """Load every source table found in the contracts from ``data_dir``; one transaction per file.

    Files are read and validated one ahead of the COPY that is running, so parsing (Arrow, C++) and
    PostgreSQL's COPY overlap on two cores. Missing files fail fast with one line before anything loads.
    """
    registry = registry or load_registry()
    tables = registry.source_tables()
    for ds in tables:
        if not (data_dir / (ds.source_file or "")).exists():
            raise LoadError(f"{data_dir / (ds.source_file or '')}: missing file for table {ds.name}")
    run_id = uuid.uuid4().hex
    started = time.perf_counter()
    wanted = _referenced_columns(tables)
    parent_keys: dict[str, pa.Array] = {}
    results: list[FileResult] = []
    with psycopg.connect(conninfo) as conn, ThreadPoolExecutor(max_workers=1) as pool:
        apply_schema(conn, registry, schema)
        conn.commit()
        # Tables come parents first: a child is validated against its parents' valid keys.
        pending = None
        for i, ds in enumerate(tables):
            t0 = time.perf_counter()
            validated = pending.result() if pending else _prepare(data_dir, ds, parent_keys)
            for col in ds.column_names:
                if f"{ds.name}.{col}" in wanted:
                    parent_keys[f"{ds.name}.{col}"] = pc.unique(validated.table.column(col))
            pending = None
            if i + 1 < len(tables):  # every parent of the next table is validated by now
                pending = pool.submit(_prepare, data_dir, tables[i + 1], dict(parent_keys))
            if progress:
                progress(ds.name, "copy")
            with conn.transaction():
                inserted, updated = write_table(conn, schema, ds, validated.table)
                write_quarantine(conn, schema, QUARANTINE_TABLE, ds.source_file or ds.name, run_id,
                                 validated.bad)
            results.append(FileResult(
                table=ds.name, source_file=ds.source_file or "", read=validated.read,
                loaded=validated.table.num_rows, inserted=inserted, updated=updated,
                quarantined=len(validated.bad), seconds=time.perf_counter() - t0, bad=validated.bad))
            if progress:
                progress(ds.name, "done")
    return LoadSummary(run_id, results, time.perf_counter() - started)
