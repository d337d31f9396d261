"""Load the nine Olist CSV files into PostgreSQL: contract-generated DDL, validation, COPY, quarantine."""

from __future__ import annotations

import contextlib
import json
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

from pipeline.batch.load.postgres import write_quarantine, write_table
from pipeline.batch.load.reader import BadRecord, LoadError, read_source, to_csv_bytes
from pipeline.batch.load.validate import quarantined_key, validate_chunks
from pipeline.contracts import Dataset, Registry, load_registry
from pipeline.provision.postgres import converge
from pipeline.totals import Total

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
    quarantined_for_parent: int = 0  # of the quarantined, those refused only for a quarantined parent row


@dataclass
class LoadSummary:
    run_id: str
    results: list[FileResult]
    seconds: float

    quarantined = Total("results", "quarantined")
    quarantined_for_parent = Total("results", "quarantined_for_parent")
    loaded = Total("results", "loaded")
    read = Total("results", "read")


def apply_schema(conn: psycopg.Connection, registry: Registry, schema: str) -> None:
    """Create the schema and every contract table that is missing (idempotent, through the provisioning layer);
    a table behind its contract raises :class:`PendingChange` naming the step `olist apply` makes."""
    converge(lambda: contextlib.nullcontext(conn), schema, registry)


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

    A worker thread reads (Arrow, C++) and validates the files chunk by chunk, running ahead of the COPY
    that streams the chunks into PostgreSQL, so parsing, checks and the server's COPY use both cores.
    Tables come parents first: a child is validated against its parents' valid keys, known as soon as
    the parent is validated. Missing files fail before anything loads.
    """
    registry = registry or load_registry()
    tables = registry.source_tables()
    for ds in tables:
        if not (data_dir / (ds.source_file or "")).exists():
            raise LoadError(f"{data_dir / (ds.source_file or '')}: missing file for table {ds.name}")
    run_id = uuid.uuid4().hex
    started = time.perf_counter()
    results: list[FileResult] = []
    with psycopg.connect(conninfo) as conn:
        apply_schema(conn, registry, schema)
        conn.commit()
        with ThreadPoolExecutor(max_workers=1) as pool:
            feed: queue.Queue = queue.Queue(maxsize=8)
            producer = pool.submit(_validate_all, data_dir, tables, feed)
            try:
                for ds in tables:
                    t0 = time.perf_counter()
                    if progress:
                        progress(ds.name, "load")
                    stream = _TableStream(feed, ds)
                    with conn.transaction():
                        inserted, updated = write_table(conn, schema, ds, stream)
                        write_quarantine(conn, schema, QUARANTINE_TABLE, ds.source_file or ds.name, run_id,
                                         stream.bad)
                    results.append(FileResult(
                        table=ds.name, source_file=ds.source_file or "", read=stream.read, loaded=stream.loaded,
                        inserted=stream.loaded if inserted < 0 else inserted, updated=updated,
                        quarantined=len(stream.bad),
                        quarantined_for_parent=sum(b.for_parent for b in stream.bad),
                        seconds=time.perf_counter() - t0,
                        bad=sorted(stream.bad, key=lambda b: b.line)))
                    if progress:
                        progress(ds.name, "done")
            finally:
                _drain(feed, producer)
    return LoadSummary(run_id, results, time.perf_counter() - started)


_END = object()


def _record(text: str) -> dict:
    """A quarantined record's fields (records refused while reading may not be a JSON object)."""
    with contextlib.suppress(ValueError):
        value = json.loads(text)
        if isinstance(value, dict):
            return value
    return {}


def _validate_all(data_dir: Path, tables: list[Dataset], feed: queue.Queue) -> None:
    """Producer: for each table, its validated chunks (with their CSV bytes), then an end marker."""
    wanted = _referenced_columns(tables)
    parent_keys: dict[str, pa.Array] = {}
    try:
        for ds in tables:
            source = read_source(data_dir / (ds.source_file or ""), ds)
            keys = {c: [] for c in ds.column_names if f"{ds.name}.{c}" in wanted}
            refused: dict[str, set[str]] = {c: set() for c in keys}
            for part in validate_chunks(source, ds, parent_keys):
                feed.put((part, to_csv_bytes(part.table) if part.table.num_rows else b""))
                for col, chunks in keys.items():
                    chunks.extend(part.table.column(col).chunks)
                for bad in part.bad:  # a child referencing one of these says so, and is counted apart
                    record = _record(bad.record)
                    for col in keys:
                        if isinstance(record.get(col), str) and record[col]:
                            refused[col].add(record[col])
            for col, chunks in keys.items():
                parent_keys[f"{ds.name}.{col}"] = valid = pc.unique(pa.chunked_array(chunks, pa.string()))
                refused_only = pa.array(sorted(refused[col]), pa.string())
                parent_keys[quarantined_key(ds.name, col)] = pc.filter(
                    refused_only, pc.invert(pc.is_in(refused_only, value_set=valid)))
            feed.put(_END)
    except BaseException as exc:  # handed to the consumer, which raises it
        feed.put(exc)


def _drain(feed: queue.Queue, producer) -> None:
    """Unblock and finish the producer after the consumer stopped early."""
    while not producer.done():
        with contextlib.suppress(queue.Empty):
            feed.get(timeout=0.1)


class _TableStream:
    """One table's CSV chunks from the producer, counting loaded rows and collecting refused ones."""

    def __init__(self, feed: queue.Queue, ds: Dataset) -> None:
        self.feed, self.ds = feed, ds
        self.bad: list[BadRecord] = []
        self.loaded = 0
        self.read = 0

    def __iter__(self) -> Iterator[bytes]:
        while (item := self.feed.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            part, data = item
            self.bad.extend(part.bad)
            self.loaded += part.table.num_rows
            self.read += part.read
            if data:
                yield data
