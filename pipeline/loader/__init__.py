"""Load the nine Olist CSV files into PostgreSQL: contract-generated DDL, validation, COPY, quarantine."""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.contracts import Dataset, Registry, load_registry
from pipeline.contracts.render_postgres import render_schema
from pipeline.loader.postgres import write_quarantine, write_table
from pipeline.loader.reader import BadRecord, LoadError, read_source, to_csv_bytes
from pipeline.loader.validate import validate_chunks

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

    The next file is parsed (Arrow, C++) and each file is validated chunk by chunk in worker threads while
    PostgreSQL COPYs the chunk before, so both cores work. Missing files fail before anything loads.
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
    with psycopg.connect(conninfo) as conn, ThreadPoolExecutor(max_workers=2) as pool:
        apply_schema(conn, registry, schema)
        conn.commit()
        reads = {tables[0].name: pool.submit(read_source, data_dir / (tables[0].source_file or ""), tables[0])}
        # Tables come parents first: a child is validated against its parents' valid keys.
        for i, ds in enumerate(tables):
            t0 = time.perf_counter()
            source = reads.pop(ds.name).result()
            if i + 1 < len(tables):
                nxt = tables[i + 1]
                reads[nxt.name] = pool.submit(read_source, data_dir / (nxt.source_file or ""), nxt)
            if progress:
                progress(ds.name, "load")
            stream = _ValidatedStream(pool, source, ds, dict(parent_keys))
            with conn.transaction():
                inserted, updated = write_table(conn, schema, ds, stream)
                write_quarantine(conn, schema, QUARANTINE_TABLE, ds.source_file or ds.name, run_id, stream.bad)
            for col in ds.column_names:
                if f"{ds.name}.{col}" in wanted:
                    parent_keys[f"{ds.name}.{col}"] = pc.unique(pa.chunked_array(stream.keys[col], pa.string()))
            results.append(FileResult(
                table=ds.name, source_file=ds.source_file or "", read=source.records, loaded=stream.loaded,
                inserted=stream.loaded if inserted < 0 else inserted, updated=updated,
                quarantined=len(stream.bad), seconds=time.perf_counter() - t0,
                bad=sorted(stream.bad, key=lambda b: b.line)))
            if progress:
                progress(ds.name, "done")
    return LoadSummary(run_id, results, time.perf_counter() - started)


class _ValidatedStream:
    """CSV chunks of valid rows, validated in a worker thread one chunk ahead of the COPY reading them."""

    def __init__(self, pool: ThreadPoolExecutor, source, ds: Dataset, parent_keys: dict[str, pa.Array]) -> None:
        self.bad: list[BadRecord] = []
        self.loaded = 0
        self.keys: dict[str, list[pa.Array]] = {c: [] for c in ds.column_names}
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._future = pool.submit(self._produce, source, ds, parent_keys)

    def _produce(self, source, ds: Dataset, parent_keys: dict[str, pa.Array]) -> None:
        try:
            for part in validate_chunks(source, ds, parent_keys):
                self._queue.put((part, to_csv_bytes(part.table) if part.table.num_rows else b""))
        finally:
            self._queue.put(None)

    def __iter__(self) -> Iterator[bytes]:
        while (item := self._queue.get()) is not None:
            part, data = item
            self.bad.extend(part.bad)
            self.loaded += part.table.num_rows
            for col in self.keys:
                self.keys[col].extend(part.table.column(col).chunks)
            if data:
                yield data
        self._future.result()  # re-raise a failure of the producer
