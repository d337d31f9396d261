"""Read an Olist CSV file by header name into Arrow string columns, keeping line numbers.

Parsing is Arrow's (multi-threaded C++); a record that cannot be split into the header's number of
fields is kept as a :class:`BadRecord`, never dropped. Line numbers are physical lines (the header is
line 1) and account for line breaks inside quoted values.
"""

from __future__ import annotations

import contextlib
import csv
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipeline.contracts import Dataset

# A huge field is the validator's to refuse with a reason, never a crash of Python's CSV reader (its default limit
# is 128 KiB): set once, for the header and the line count alike.
csv.field_size_limit(2**31 - 1)


class LoadError(Exception):
    """A file cannot be loaded at all; the message is one line naming the file and the column."""


@dataclass
class BadRecord:
    """A source record refused before or during validation."""

    line: int
    reason: str
    record: str
    column: str | None = None
    for_parent: bool = False  # refused only because the row it references was itself quarantined


@dataclass
class SourceRead:
    """The string columns of one file, in contract order, with the line each record starts on."""

    table: pa.Table
    lines: np.ndarray
    bad: list[BadRecord] = field(default_factory=list)

    @property
    def records(self) -> int:
        return self.table.num_rows + len(self.bad)


def read_header(path: Path) -> list[str]:
    """The header's field names, without a UTF-8 byte-order mark or quotes."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        try:
            return [name.strip() for name in next(csv.reader(fh))]
        except StopIteration:
            raise LoadError(f"{path.name}: the file is empty (no header line)") from None
        except csv.Error as exc:
            raise LoadError(f"{path.name}: line 1: the header cannot be read as CSV ({exc})") from None


def _shown(name: str, limit: int = 60) -> str:
    """A header name as an error shows it, on one line: a mangled header can hold a whole file in one name, line
    breaks included."""
    text = re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], name[:limit])
    return text if len(name) <= limit else f"{text}... ({len(name):,} characters)"


def check_header(path: Path, header: list[str], ds: Dataset) -> None:
    expected = ds.column_names
    for name in header:
        if header.count(name) > 1:
            raise LoadError(f"{path.name}: column '{_shown(name)}' appears more than once in the header")
    for col in ds.columns:  # an optional column a file predates (a contract gained it) is loaded as null
        if col.name not in header and col.required:
            raise LoadError(f"{path.name}: missing column '{col.name}' (table {ds.name})")
    for name in header:
        if name not in expected:
            raise LoadError(f"{path.name}: unknown column '{_shown(name)}' (not in the contract of {ds.name})")


def _decode(table: pa.Table) -> tuple[pa.Table, dict[int, list[str]]]:
    """Binary columns to UTF-8 strings; rows with broken encoding are reported by index."""
    broken: dict[int, list[str]] = {}
    columns = []
    for name in table.column_names:
        col = table.column(name)
        try:
            columns.append(pc.cast(col, pa.string()))
            continue
        except pa.ArrowInvalid:
            pass
        values = []
        for i, raw in enumerate(col.to_pylist()):
            try:
                values.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                broken.setdefault(i, []).append(f"{name}: not valid UTF-8")
                values.append(raw.decode("utf-8", errors="replace"))
        columns.append(pa.chunked_array([pa.array(values, pa.string())]))
    return pa.table(columns, names=table.column_names), broken


def _python_records(path: Path, width: int, keep_fields: bool = False
                    ) -> tuple[list[list[str]], list[int], list[tuple[str, int]], list[int]]:
    """Every record after the header by Python's CSV reader (the slow path, only for a file with malformed records):
    the well-formed ones' start lines (and their fields when ``keep_fields``), the malformed ones' text, field count
    and start lines. Bytes that are not UTF-8 are kept as surrogates, for :func:`_encoded` to give back as they were."""
    good, good_lines, malformed, malformed_lines = [], [], [], []
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        while True:
            start = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # a NUL byte, or a quote left open at the end of the file
                raise LoadError(f"{path.name}: line {start}: cannot be read as CSV ({exc})") from None
            if not fields:
                continue
            if len(fields) == width:
                if keep_fields:
                    good.append(fields)
                good_lines.append(start)
            else:
                text = ",".join(fields).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                malformed.append((text, len(fields)))
                malformed_lines.append(start)
    return good, good_lines, malformed, malformed_lines


def _encoded(records: list[list[str]], header: list[str]) -> pa.Table:
    """Python's records as the binary columns Arrow's reader gives (the bytes of the file, surrogates undone)."""
    columns = [pa.array([r[i].encode("utf-8", "surrogateescape") for r in records], pa.binary())
               for i in range(len(header))]
    return pa.table(columns, names=header)


@contextlib.contextmanager
def _handler_failures() -> Iterator[list[BaseException]]:
    """Errors raised in Arrow's invalid-row callback, kept instead of printed. Arrow decodes a malformed record's
    text as UTF-8 before it calls the handler; when that fails it reports the error as unraisable (a traceback on
    stderr) and fails the whole read. The read then falls back to Python's reader, which quarantines that record."""
    failures: list[BaseException] = []
    previous = sys.unraisablehook

    def keep(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, UnicodeDecodeError):
            failures.append(unraisable.exc_value)
        else:
            previous(unraisable)

    sys.unraisablehook = keep
    try:
        yield failures
    finally:
        sys.unraisablehook = previous


def read_source(path: Path, ds: Dataset) -> SourceRead:
    """Parse one source file into string columns named and ordered as the contract says."""
    if not path.exists():
        raise LoadError(f"{path}: missing file for table {ds.name}")
    header = read_header(path)
    check_header(path, header, ds)
    malformed: list[tuple[str, int]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        malformed.append((row.text, row.actual_columns))
        return "skip"

    table: pa.Table | None
    try:
        with _handler_failures() as failures:
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(column_names=header, skip_rows=1, block_size=8 << 20),
                parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.binary() for name in header}, strings_can_be_null=False
                ),
            )
    except pa.ArrowInvalid as exc:
        if not failures:
            raise LoadError(f"{path.name}: cannot be parsed as CSV: {str(exc).splitlines()[0]}") from exc
        table = None  # a malformed record that is not UTF-8: Python's reader splits the file instead

    if table is None:
        records, good, malformed, bad_lines = _python_records(path, len(header), keep_fields=True)
        table, lines = _encoded(records, header), np.asarray(good, dtype=np.int64)
    elif malformed:
        _, good, _, bad_lines = _python_records(path, len(header))
        if len(good) != table.num_rows or len(bad_lines) != len(malformed):
            raise LoadError(f"{path.name}: record boundaries are ambiguous (unbalanced quotes?)")
        lines = np.asarray(good, dtype=np.int64)
    else:
        breaks = np.zeros(table.num_rows, dtype=np.int64)
        for name in header:  # a line break is LF, CRLF or a lone CR, as Python's csv module counts them
            col = table.column(name)
            for pattern, sign in (("\n", 1), ("\r", 1), ("\r\n", -1)):
                breaks += sign * pc.count_substring(col, pattern).to_numpy(zero_copy_only=False).astype(np.int64)
        lines = 2 + np.arange(table.num_rows, dtype=np.int64) + np.cumsum(breaks) - breaks
        bad_lines = []

    for name in ds.column_names:
        if name not in header:  # optional and newer than the file: null in every row
            table = table.append_column(name, pa.nulls(table.num_rows, pa.binary()))
    table, broken = _decode(table.select(ds.column_names))
    bad = [
        BadRecord(line, f"wrong column count: {width} fields, expected {len(header)}", text)
        for (text, width), line in zip(malformed, bad_lines, strict=True)
    ]
    if broken:
        keep = np.ones(table.num_rows, dtype=bool)
        for i, reasons in broken.items():
            keep[i] = False
            record = dict(zip(table.column_names, (table.column(c)[i].as_py() for c in table.column_names),
                              strict=True))
            bad.append(BadRecord(int(lines[i]), "; ".join(reasons), repr(record), reasons[0].split(":")[0]))
        table = table.filter(pa.array(keep))
        lines = lines[keep]
    return SourceRead(table=table, lines=lines, bad=bad)


def to_csv_bytes(table: pa.Table) -> bytes:
    """Arrow table to CSV for PostgreSQL COPY: strings quoted, nulls as bare empty fields.

    Chunks are combined first: Arrow 26's CSV writer emits garbage for a column whose first chunk is
    empty (as slices and filters of multi-chunk tables produce); ``test_csv_bytes_*`` guards this.
    """
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table.combine_chunks(), sink, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return sink.getvalue().to_pybytes()
