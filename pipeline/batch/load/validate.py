"""Vectorised checks of string columns against a contract: types, enums, ranges, keys, references.

Each check yields a boolean mask of failing rows and a reason; valid rows pass through untouched as
text (PostgreSQL parses them exactly as written), empty values of optional columns become NULL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.batch.load.reader import BadRecord, SourceRead
from pipeline.contracts import Column, Dataset

INTEGER_RE = r"^-?[0-9]+(\.0+)?$"
NUMBER_RE = r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"
SQL_INT_RANGE = {"smallint": (-32768, 32767), "integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
JAVA_TO_STRPTIME = (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S"))


def strptime_format(java_format: str | None) -> str:
    fmt = java_format or "yyyy-MM-dd HH:mm:ss"
    for java, c in JAVA_TO_STRPTIME:
        fmt = fmt.replace(java, c)
    return fmt


DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
ISO_SECONDS = "yyyy-MM-dd HH:mm:ss"
ISO_SECONDS_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"


def _valid_timestamps(arr: pa.ChunkedArray, java_format: str | None) -> pa.Array:
    """True where the text is a real timestamp in the format (a 30 February is not)."""
    if (java_format or ISO_SECONDS) != ISO_SECONDS:
        fmt = strptime_format(java_format)
        parsed = pc.strptime(arr, format=fmt, unit="s", error_is_null=True)
        # Arrow's strptime rolls 2018-02-30 over to March: valid only if it prints back as read.
        return pc.fill_null(pc.equal(pc.strftime(parsed, format=fmt), arr), False)
    shaped = _as_bool(pc.match_substring_regex(arr, ISO_SECONDS_RE))
    safe = pc.if_else(pa.array(shaped), arr, "2000-01-01 00:00:00")

    def part(start: int, stop: int) -> np.ndarray:
        return pc.cast(pc.utf8_slice_codeunits(safe, start, stop), pa.int32()).to_numpy(zero_copy_only=False)

    year, month, day = part(0, 4), part(5, 7), part(8, 10)
    hour, minute, second = part(11, 13), part(14, 16), part(17, 19)
    month_ok = (month >= 1) & (month <= 12)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    last_day = DAYS_IN_MONTH[np.clip(month, 1, 12) - 1] + ((month == 2) & leap)
    ok = shaped & month_ok & (day >= 1) & (day <= last_day) & (hour < 24) & (minute < 60) & (second < 60)
    return pa.array(ok)


@dataclass
class Check:
    column: str
    failing: pa.Array  # boolean, True where the row fails
    reason: str  # "{value}" in it stands for the failing value (replaced, never str.format: patterns hold braces)
    for_parent: bool = False  # a reference to a row that was quarantined (not a fault of this row's own)


def quarantined_key(table: str, column: str) -> str:
    """Where ``parent_keys`` keeps the values of ``table.column`` in the rows that were quarantined."""
    return f"{table}.{column}:quarantined"


def _as_bool(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def _range_checks(col: Column, arr: pa.ChunkedArray, ok_type: pa.Array) -> list[Check]:
    checks: list[Check] = []
    physical = col.physical_type.lower()
    lo, hi = col.minimum, col.maximum
    if physical in SQL_INT_RANGE:
        int_lo, int_hi = SQL_INT_RANGE[physical]
        lo = int_lo if lo is None else max(float(lo), int_lo)
        hi = int_hi if hi is None else min(float(hi), int_hi)
    if lo is None and hi is None:
        return checks
    if col.logical_type in ("timestamp", "date"):
        # Valid values are ISO text of one fixed format, so they compare as text.
        values, bounds = arr, ((lo, str(lo), "is before the minimum"), (hi, str(hi), "is after the maximum"))
    else:
        values = pc.cast(pc.if_else(ok_type, arr, "0"), pa.float64())
        bounds = ((lo, _num(lo), "is below the minimum"), (hi, _num(hi), "is above the maximum"))
    for (bound, shown, words), compare in zip(bounds, (pc.less, pc.greater), strict=True):
        if bound is not None:
            limit = str(bound) if values is arr else float(bound)
            checks.append(Check(col.name, pc.and_(ok_type, compare(values, limit)), f"{{value}} {words} {shown}"))
    return checks


def _num(value: float | str | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def column_checks(col: Column, arr: pa.ChunkedArray) -> list[Check]:
    """Every check the contract implies for one column."""
    empty = pc.equal(pc.utf8_length(arr), 0)
    present = pc.invert(empty)
    checks: list[Check] = []
    if col.required:
        checks.append(Check(col.name, empty, "required value is empty"))
    ok_type = present
    if col.logical_type in ("integer", "number"):
        pattern = INTEGER_RE if col.logical_type == "integer" else NUMBER_RE
        bad = pc.and_(present, pc.invert(pc.match_substring_regex(arr, pattern)))
        kind = "an integer" if col.logical_type == "integer" else "a number"
        checks.append(Check(col.name, bad, f"{{value}} is not {kind}"))
        ok_type = pc.and_(present, pc.invert(bad))
        if col.decimal_digits:
            precision, scale = col.decimal_digits
            whole = pc.utf8_length(pc.replace_substring_regex(arr, r"^-?0*([0-9]*).*$", r"\1"))
            too_big = pc.and_(ok_type, pc.greater(whole, precision - scale))
            checks.append(Check(col.name, too_big, f"{{value}} has more than {precision - scale} integer digits"))
    elif col.logical_type in ("timestamp", "date"):
        bad = pc.and_(present, pc.invert(_valid_timestamps(arr, col.timestamp_format)))
        checks.append(Check(col.name, bad, f"{{value}} is not a {col.logical_type} ({col.timestamp_format})"))
        ok_type = pc.and_(present, pc.invert(bad))
    if col.enum:
        values = pa.array([str(v) for v in col.enum])
        checks.append(Check(col.name, pc.and_(present, pc.invert(pc.is_in(arr, value_set=values))),
                            "{value} is not one of the contract's values"))
    if col.pattern:
        checks.append(Check(col.name, pc.and_(present, pc.invert(pc.match_substring_regex(arr, col.pattern))),
                            f"{{value}} does not match {col.pattern}"))
    length = re.fullmatch(r"(?:varchar|character varying|char)\((\d+)\)", col.physical_type.lower())
    if length:
        checks.append(Check(col.name, pc.greater(pc.utf8_length(arr), int(length.group(1))),
                            f"{{value}} is longer than {length.group(1)} characters"))
    checks.extend(_range_checks(col, arr, ok_type))
    # PostgreSQL's text cannot hold a NUL byte (COPY would fail the whole file): the row is refused instead.
    checks.append(Check(col.name, pc.match_substring(arr, "\x00"), "{value} holds a NUL byte, which text cannot"))
    return checks


def key_of(table: pa.Table, columns: list[str]) -> pa.ChunkedArray:
    if len(columns) == 1:
        return table.column(columns[0])
    return pc.binary_join_element_wise(*(table.column(c) for c in columns), "\x1f")


def duplicate_check(table: pa.Table, key: list[str], lines: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
    """Rows whose primary key repeats an earlier row's (the first occurrence is kept)."""
    keys = key_of(table, key)
    idx = pa.array(np.arange(table.num_rows))
    firsts = pa.table({"k": keys, "i": idx}).group_by("k", use_threads=False).aggregate([("i", "min")])
    first_idx = firsts.column("i_min").to_numpy()
    dup = np.ones(table.num_rows, dtype=bool)
    dup[first_idx] = False
    reasons: dict[int, str] = {}
    if dup.any():
        first_line = dict(zip(firsts.column("k").to_pylist(), lines[first_idx].tolist(), strict=True))
        key_list = keys.to_pylist()
        for i in np.flatnonzero(dup):
            reasons[int(i)] = (f"duplicate key ({', '.join(key)})=({key_list[i].replace(chr(31), ', ')})"
                               f" first seen at line {first_line[key_list[i]]}")
    return dup, reasons


@dataclass
class Validated:
    table: pa.Table  # valid rows, ready for COPY (empty optional values are NULL)
    bad: list[BadRecord]
    read: int


def _chunk(table: pa.Table, lines: np.ndarray, ds: Dataset, parent_keys: dict[str, pa.Array],
           duplicate: np.ndarray, dup_reasons: dict[int, str], offset: int) -> Validated:
    """Check one slice of rows; ``duplicate``/``dup_reasons`` are for the whole file, by row index."""
    n = table.num_rows
    checks: list[Check] = []
    for col in ds.columns:
        arr = table.column(col.name)
        checks.extend(column_checks(col, arr))
        for ref_table, ref_col in col.references:
            parents = parent_keys.get(f"{ref_table}.{ref_col}")
            if parents is not None:
                orphan = pc.and_(pc.invert(pc.equal(pc.utf8_length(arr), 0)),
                                 pc.invert(pc.is_in(arr, value_set=parents)))
                refused = parent_keys.get(quarantined_key(ref_table, ref_col))
                if refused is not None and len(refused):
                    cascaded = pc.and_(orphan, pc.is_in(arr, value_set=refused))
                    orphan = pc.and_(orphan, pc.invert(cascaded))
                    checks.append(Check(col.name, cascaded, f"{{value}}: its {ref_table} row was quarantined",
                                        for_parent=True))
                checks.append(Check(col.name, orphan, f"{{value}} not found in {ref_table}.{ref_col}"))
    masks = [_as_bool(c.failing) for c in checks]
    failing = duplicate[offset:offset + n].copy()
    for m in masks:
        failing |= m
    bad = []
    for i in np.flatnonzero(failing):
        reasons, first_col, own = [], None, offset + int(i) in dup_reasons
        for check, mask in zip(checks, masks, strict=True):
            if mask[i]:
                value = table.column(check.column)[int(i)].as_py()
                reasons.append(f"{check.column}: " + check.reason.replace("{value}", repr(value)))
                first_col = first_col or check.column
                own = own or not check.for_parent
        if offset + int(i) in dup_reasons:
            reasons.append(dup_reasons[offset + int(i)])
        record = {c: table.column(c)[int(i)].as_py() for c in table.column_names}
        bad.append(BadRecord(int(lines[i]), "; ".join(reasons), json.dumps(record, ensure_ascii=False),
                             first_col, for_parent=not own))
    good = table.filter(pa.array(~failing))
    columns = []
    for col in ds.columns:
        arr = good.column(col.name)
        if col.logical_type == "integer":
            arr = pc.replace_substring_regex(arr, r"\.0+$", "")
        if not col.required:
            arr = pc.if_else(pc.equal(pc.utf8_length(arr), 0), pa.scalar(None, pa.string()), arr)
        columns.append(arr)
    return Validated(pa.table(columns, names=ds.column_names), bad, n)


def validate_chunks(source: SourceRead, ds: Dataset, parent_keys: dict[str, pa.Array],
                    chunk_rows: int = 50_000) -> Iterator[Validated]:
    """Validate a file slice by slice, so COPY of one slice overlaps the checks of the next.

    Primary-key duplicates are found over the whole file first: the first occurrence is kept and every
    later one is quarantined with the line of the first. Records refused while reading come first.
    """
    table, lines = source.table, source.lines
    duplicate = np.zeros(table.num_rows, dtype=bool)
    dup_reasons: dict[int, str] = {}
    if ds.primary_key and table.num_rows:
        duplicate, dup_reasons = duplicate_check(table, ds.primary_key, lines)
    yield Validated(table.slice(0, 0), list(source.bad), len(source.bad))
    for offset in range(0, table.num_rows, chunk_rows):
        yield _chunk(table.slice(offset, chunk_rows), lines[offset:offset + chunk_rows], ds, parent_keys,
                     duplicate, dup_reasons, offset)


def validate(source: SourceRead, ds: Dataset, parent_keys: dict[str, pa.Array]) -> Validated:
    """Split a whole file into valid rows and quarantined ones with every reason."""
    parts = list(validate_chunks(source, ds, parent_keys))
    bad = sorted((b for p in parts for b in p.bad), key=lambda b: b.line)
    return Validated(pa.concat_tables([p.table for p in parts]), bad, sum(p.read for p in parts))
