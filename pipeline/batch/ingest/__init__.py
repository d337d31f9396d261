"""PostgreSQL -> S3 Parquet ingestion (the seed's NiFi flow): typed from the contracts, incremental by
the loader's change timestamp, committed by manifests, reconciled against the source."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from psycopg import sql

from emulation.service import ServiceError
from pipeline.batch.ingest.manifest import (
    DataFile,
    Manifest,
    committed_files,
    manifests,
    orphans,
    table_prefix,
    write_manifest,
)
from pipeline.contracts import Dataset, Registry, load_registry
from pipeline.contracts.render_arrow import arrow_schema
from pipeline.contracts.render_postgres import CHANGE_COLUMN, DELETED_COLUMN, DELETIONS_TABLE, records_deletes
from pipeline.storage import S3Location

ROWS_PER_FILE = 500_000
CHANGE_FIELD = pa.field(CHANGE_COLUMN, pa.timestamp("us", tz="UTC"), nullable=False)
# A bronze version with _deleted = true records the row's delete (its last image); silver then drops the key.
DELETED_FIELD = pa.field(DELETED_COLUMN, pa.bool_())
BRONZE_FIELDS = [CHANGE_FIELD, DELETED_FIELD]
# Rows committed by a transaction still open now carry its start time: copy only rows older than the
# oldest open transaction, so a later run cannot miss them (and no row is copied twice).
GUARD_SQL = """
select least(now(), coalesce((select min(xact_start) from pg_stat_activity
                              where pid <> pg_backend_pid() and datname = current_database()
                                and xact_start is not null), now()))
"""


@dataclass
class TableResult:
    table: str
    mode: str
    copied: int
    files: int
    bytes: int
    source_rows: int
    bronze_rows: int  # rows readers see now (distinct keys for keyed tables)
    orphans_removed: int
    seconds: float
    skipped: str = ""

    @property
    def reconciled(self) -> bool:
        return self.source_rows == self.bronze_rows


def _read_copy(cur: psycopg.Cursor, query: sql.Composable, schema: pa.Schema) -> pa.Table:
    buf = io.BytesIO()
    with cur.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)) as copy:
        for block in copy:
            buf.write(block)
    parse_types = {f.name: (pa.timestamp("us") if pa.types.is_timestamp(f.type) else f.type) for f in schema}
    if not buf.tell():
        return schema.empty_table()
    table = pacsv.read_csv(
        io.BytesIO(buf.getvalue()),
        read_options=pacsv.ReadOptions(column_names=schema.names, block_size=16 << 20),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=parse_types, strings_can_be_null=True,
                                             quoted_strings_can_be_null=False, true_values=["t"],
                                             false_values=["f"]),
    )
    return table.cast(schema)


def _write_files(table: pa.Table, loc: S3Location, fs: pafs.FileSystem, bronze: str, ds: Dataset,
                 run_id: str, day: str) -> list[DataFile]:
    files = []
    for n, offset in enumerate(range(0, table.num_rows, ROWS_PER_FILE)):
        part = table.slice(offset, ROWS_PER_FILE)
        sink = pa.BufferOutputStream()
        pq.write_table(part, sink, compression="snappy")
        data = sink.getvalue()
        key = f"{table_prefix(loc, bronze, ds.name)}/ingest_date={day}/part-{run_id}-{n:04d}.parquet"
        with fs.open_output_stream(key) as out:
            out.write(data)
        files.append(DataFile(key, part.num_rows, data.size, hashlib.sha256(data.to_pybytes()).hexdigest()))
    return files


def live_keys(versions: pa.Table, key: list[str]) -> pa.Table:
    """The keys whose newest version (by change time; on a tie the row that is there wins) is not a delete."""
    deleted = pc.fill_null(versions.column(DELETED_COLUMN), False)
    ordered = versions.set_column(versions.schema.get_field_index(DELETED_COLUMN), DELETED_COLUMN, deleted).sort_by(
        [(CHANGE_COLUMN, "descending"), (DELETED_COLUMN, "ascending")])
    newest = ordered.group_by(key, use_threads=False).aggregate([(DELETED_COLUMN, "first")])
    return newest.filter(pc.invert(newest.column(f"{DELETED_COLUMN}_first"))).select(key)


def bronze_row_count(ds: Dataset, loc: S3Location, fs: pafs.FileSystem, history: list[Manifest]) -> int:
    """Rows a reader of silver sees: live keys for keyed tables, the snapshot's rows else."""
    files = committed_files(history)
    if not ds.primary_key or not files:
        return sum(f.rows for f in files)
    versions = pq.ParquetDataset([f.path for f in files], filesystem=fs,
                                 schema=arrow_schema(ds, BRONZE_FIELDS)).read(
        columns=[*ds.primary_key, CHANGE_COLUMN, DELETED_COLUMN])
    return live_keys(versions, ds.primary_key).num_rows


def _window(column: sql.Composable, lo: str | None, guard: dt.datetime) -> sql.Composable:
    """``lo <= column < guard`` (no lower bound on the first run)."""
    where = sql.SQL("{} < {}").format(column, sql.Literal(guard))
    if lo:
        where = sql.SQL("{} >= {} AND {}").format(column, sql.Literal(dt.datetime.fromisoformat(lo)), where)
    return where


def _deletions(ds: Dataset, schema: str, lo: str | None, guard: dt.datetime) -> sql.Composable:
    """The table's deletes in the window, as versions of the rows: their last image, deleted_at, true."""
    image = sql.SQL(", ").join(sql.SQL("(d.r).{}").format(sql.Identifier(c)) for c in ds.column_names)
    return sql.SQL(
        "SELECT {}, d.deleted_at AT TIME ZONE 'UTC', true FROM (SELECT jsonb_populate_record(NULL::{}, row_image) "
        "AS r, deleted_at FROM {} WHERE table_name = {} AND {}) AS d").format(
        image, sql.Identifier(schema, ds.physical_name), sql.Identifier(schema, DELETIONS_TABLE),
        sql.Literal(ds.physical_name), _window(sql.Identifier("deleted_at"), lo, guard))


def ingest_table(conn: psycopg.Connection, schema: str, ds: Dataset, loc: S3Location, fs: pafs.FileSystem,
                 bronze: str) -> TableResult:
    t0 = time.perf_counter()
    history = manifests(loc, fs, bronze, ds.name)
    stale = orphans(loc, fs, bronze, ds.name, history)
    for path in stale:
        fs.delete_file(path)
    snapshot = ds.change_detection == "full"
    out_schema = arrow_schema(ds, BRONZE_FIELDS)
    target = sql.Identifier(schema, ds.physical_name)
    cols = sql.SQL(", ").join(map(sql.Identifier, ds.column_names))
    change = sql.SQL("{} AT TIME ZONE 'UTC'").format(sql.Identifier(CHANGE_COLUMN))
    run_id = uuid.uuid4().hex[:12]
    now = dt.datetime.now(dt.UTC)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        guard = cur.execute(GUARD_SQL).fetchone()[0]
        source_rows = cur.execute(sql.SQL("SELECT count(*) FROM {}").format(target)).fetchone()[0]
        if snapshot:
            checksum = str(cur.execute(sql.SQL(
                "SELECT coalesce(sum(hashtextextended(({})::text, 0)), 0) FROM {}").format(
                sql.SQL("ROW({})").format(cols), target)).fetchone()[0])
            if history and history[-1].checksum == checksum and history[-1].source_rows == source_rows:
                return TableResult(ds.name, "snapshot", 0, 0, 0, source_rows, history[-1].rows, len(stale),
                                   time.perf_counter() - t0, "unchanged")
            query = sql.SQL("SELECT {}, {}, false FROM {}").format(cols, change, target)
            mode, lo, hi = "snapshot", None, None
        else:
            checksum = None
            lo = history[-1].watermark_to if history else None
            hi = guard.astimezone(dt.UTC).isoformat()
            query = sql.SQL("SELECT {}, {}, false FROM {} WHERE {}").format(
                cols, change, target, _window(sql.Identifier(CHANGE_COLUMN), lo, guard))
            if records_deletes(ds):
                query = sql.SQL("{} UNION ALL {}").format(query, _deletions(ds, schema, lo, guard))
            mode = "incremental" if history else "initial"
        table = _read_copy(cur, query, out_schema)
    if not snapshot and table.num_rows == 0 and history:
        # Nothing changed: keep the watermark where it is (no manifest), so re-runs are no-ops.
        return TableResult(ds.name, mode, 0, 0, 0, source_rows, bronze_row_count(ds, loc, fs, history),
                           len(stale), time.perf_counter() - t0, "no changes")
    files = _write_files(table, loc, fs, bronze, ds, run_id, now.date().isoformat())
    manifest = Manifest(run_id=run_id, table=ds.name, mode=mode, created_at=now.strftime("%Y%m%dT%H%M%S%fZ"),
                        contract_version=ds.version, watermark_from=lo, watermark_to=hi,
                        source_rows=source_rows, checksum=checksum, files=files)
    write_manifest(loc, fs, bronze, manifest)
    history.append(manifest)
    return TableResult(ds.name, mode, table.num_rows, len(files), manifest.bytes, source_rows,
                       bronze_row_count(ds, loc, fs, history), len(stale), time.perf_counter() - t0)


def ingest(conninfo: str, loc: S3Location, schema: str = "olist", bronze: str = "bronze",
           tables: list[str] | None = None, registry: Registry | None = None,
           progress: Callable[[str], None] | None = None) -> list[TableResult]:
    """Copy each source table's new rows to ``s3://bucket/bronze/TABLE/ingest_date=.../``."""
    registry = registry or load_registry()
    chosen = [d for d in registry.source_tables() if tables is None or d.name in tables]
    fs = loc.arrow_fs()
    results = []
    with psycopg.connect(conninfo) as conn:
        if conn.execute("select to_regclass(%s)", (f"{schema}.{DELETIONS_TABLE}",)).fetchone()[0] is None:
            raise ServiceError(f"postgres: {schema}.{DELETIONS_TABLE} is missing, so deletes could not be carried to "
                               "bronze: create the tables from the contracts first (`olist load` does)")
        conn.commit()
        for ds in chosen:
            if progress:
                progress(ds.name)
            results.append(ingest_table(conn, schema, ds, loc, fs, bronze))
    return results
