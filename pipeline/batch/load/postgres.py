"""Write validated rows to PostgreSQL with COPY: a plain COPY into an empty table, an idempotent
upsert (only rows that changed get a new ``_changed_at``) into a loaded one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import psycopg
from psycopg import sql

from pipeline.batch.load.reader import BadRecord
from pipeline.contracts import Dataset
from pipeline.contracts.render_postgres import CHANGE_COLUMN


def copy_rows(cur: psycopg.Cursor, target: sql.Composable, columns: list[str], chunks: Iterable[bytes]) -> None:
    """COPY CSV chunks (as ``reader.to_csv_bytes`` writes them) into ``target``."""
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        target, sql.SQL(", ").join(map(sql.Identifier, columns)))
    with cur.copy(stmt) as copy:
        for chunk in chunks:
            copy.write(chunk)


def write_table(conn: psycopg.Connection, schema: str, ds: Dataset, chunks: Iterable[bytes]) -> tuple[int, int]:
    """Load CSV chunks into ``schema.table``; returns (inserted, updated), inserted -1 meaning "all".

    Caller holds the transaction."""
    target = sql.Identifier(schema, ds.physical_name)
    cols = ds.column_names
    cur = conn.cursor()
    has_rows = cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(target)).fetchone()[0]
    if not has_rows:
        copy_rows(cur, target, cols, chunks)
        return -1, 0
    if not ds.primary_key:
        cur.execute(sql.SQL("TRUNCATE {}").format(target))
        copy_rows(cur, target, cols, chunks)
        return -1, 0
    staging = sql.Identifier(f"_stage_{ds.physical_name}")
    cur.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(staging, target))
    copy_rows(cur, staging, cols, chunks)
    ident = lambda names: sql.SQL(", ").join(map(sql.Identifier, names))  # noqa: E731
    non_key = [c for c in cols if c not in ds.primary_key]
    updates = sql.SQL(", ").join(
        [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in non_key]
        + [sql.SQL("{} = now()").format(sql.Identifier(CHANGE_COLUMN))])
    stmt = sql.SQL(
        "INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM {staging} "
        "ON CONFLICT ({key}) DO UPDATE SET {updates} "
        "WHERE ({t_non_key}) IS DISTINCT FROM ({ex_non_key}) RETURNING (xmax = 0) AS inserted"
    ).format(
        target=target, cols=ident(cols), staging=staging, key=ident(ds.primary_key), updates=updates,
        t_non_key=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in non_key),
        ex_non_key=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in non_key),
    )
    if not non_key:
        stmt = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING RETURNING true").format(
            target, ident(cols), ident(cols), staging)
    flags = [row[0] for row in cur.execute(stmt).fetchall()]
    inserted = sum(flags)
    return inserted, len(flags) - inserted


def write_quarantine(conn: psycopg.Connection, schema: str, table_name: str, source_file: str,
                     run_id: str, bad: list[BadRecord]) -> None:
    """Replace the file's earlier quarantine entries with this run's."""
    target = sql.Identifier(schema, table_name)
    cur = conn.cursor()
    cur.execute(sql.SQL("DELETE FROM {} WHERE source_file = %s").format(target), (source_file,))
    if not bad:
        return
    stmt = sql.SQL("COPY {} (source_file, line_number, column_name, reason, record, run_id, quarantined_at) "
                   "FROM STDIN").format(target)
    now = dt.datetime.now(dt.UTC)
    with cur.copy(stmt) as copy:
        for b in bad:  # a NUL byte (text cannot hold one) is kept visible as \x00: nothing of the record is lost
            copy.write_row((source_file, b.line, b.column, _text(b.reason), _text(b.record), run_id, now))


def _text(value: str) -> str:
    return value.replace("\x00", "\\x00")
