"""A small, fast CSV writer for the exact text format of the Olist files.

Python's ``csv`` module cannot quote "only values that start with a digit", so this module does the
quoting itself. Policies, applied per value:

- ``leadingDigit``: quote a value that starts with an ASCII digit (``"09790"``, ids such as
  ``"53cdb2fc..."``). A value that also holds a comma, a double quote, CR or LF is quoted too, whatever
  its first character, so the file always stays parseable.
- ``always``: quote every non-empty value.
- ``minimal``: quote only values holding a comma, a double quote, CR or LF.
- ``never``: quote nothing; a value that cannot be written unquoted raises :class:`CsvFormatError`.

Whenever a value is quoted, its double quotes are doubled. Empty strings and ``None`` are written as
an empty field, without quotes (except the lone field of a one-column row, written ``""`` unless the
policy is ``never``, so the row is not read back as a blank line).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipeline.contracts.registry import QUOTE_POLICIES, CsvFormat

__all__ = [
    "QUOTE_POLICIES",
    "CsvFormatError",
    "TableStats",
    "column_policies",
    "format_column",
    "format_field",
    "normalize_newlines",
    "write_table",
]

_SPECIAL = re.compile(r'[,"\r\n]')
_NEWLINE = re.compile(r"\r\n|\r|\n")
_DIGITS = frozenset("0123456789")
_BOM = "\ufeff".encode()


class CsvFormatError(ValueError):
    """A value cannot be written under the column's quoting policy."""


class _ColumnLike(Protocol):
    name: str
    logical_type: str
    csv_quote: str | None


@dataclass(frozen=True)
class TableStats:
    """What :func:`write_table` wrote."""

    rows: int
    bytes: int


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _check_policy(policy: str) -> None:
    if policy not in QUOTE_POLICIES:
        raise ValueError(f"unknown quote policy {policy!r}; expected one of {', '.join(QUOTE_POLICIES)}")


def format_field(value: str | None, policy: str, column: str = "?") -> str:
    """Format one value under ``policy`` (see the module docstring)."""
    _check_policy(policy)
    if not value:
        return ""
    special = _SPECIAL.search(value) is not None
    if policy == "never":
        if special:
            raise CsvFormatError(f"column {column!r}: value {value!r} cannot be written unquoted")
        return value
    if policy == "always" or special or (policy == "leadingDigit" and value[0] in _DIGITS):
        return _quote(value)
    return value


def format_column(
    values: Sequence[str | None], policy: str, column: str = "?", newline: str | None = None
) -> list[str]:
    """Format a column of values at once; same result as :func:`format_field` on each value.

    With ``newline`` set, line breaks inside values (CRLF, CR or LF) are first written as ``newline``.
    """
    _check_policy(policy)
    # One regex scan over the whole column tells whether the per-value checks are needed at all.
    joined = "\x1f".join([v for v in values if v])
    special = _SPECIAL.search(joined) is not None
    if special and newline is not None and ("\n" in joined or "\r" in joined):
        values = [normalize_newlines(v, newline) for v in values]
    if policy == "always":
        return [_quote(v) if v else "" for v in values]
    if policy == "never":
        if special:
            bad = next(v for v in values if v and _SPECIAL.search(v))
            raise CsvFormatError(f"column {column!r}: value {bad!r} cannot be written unquoted")
        return [v or "" for v in values]
    if policy == "minimal":
        if not special:
            return [v or "" for v in values]
        return [_quote(v) if v and _SPECIAL.search(v) else (v or "") for v in values]
    digits = _DIGITS
    if not special:
        return [('"' + v + '"') if v and v[0] in digits else (v or "") for v in values]
    return [_quote(v) if v and (v[0] in digits or _SPECIAL.search(v)) else (v or "") for v in values]


def normalize_newlines(value: str | None, terminator: str) -> str | None:
    """Write every line break inside ``value`` (CRLF, CR or LF) as ``terminator``."""
    if not value or ("\n" not in value and "\r" not in value):
        return value
    return _NEWLINE.sub(terminator, value)


def column_policies(columns: Sequence[_ColumnLike], fmt: CsvFormat) -> list[str]:
    """Quote policy of each column: its ``csvQuote`` override, else the file's policy for text columns.

    Numbers and timestamps are never quoted in the Olist files even though they start with a digit,
    so under ``leadingDigit`` non-string columns fall back to ``minimal`` (which quotes nothing there).
    """
    policies = []
    for col in columns:
        if col.csv_quote:
            policy = col.csv_quote
        elif col.logical_type != "string" and fmt.quote == "leadingDigit":
            policy = "minimal"
        else:
            policy = fmt.quote
        _check_policy(policy)
        policies.append(policy)
    return policies


def write_table(
    path: Path,
    header: Sequence[str],
    batches: Iterable[Sequence[Sequence[str | None]]],
    fmt: CsvFormat,
    policies: Sequence[str],
    *,
    newlines_as_terminator: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> TableStats:
    """Write a header and batches of columns to ``path`` under ``fmt``; return rows and bytes written.

    Each batch is a sequence of columns (one per header name) of equal length. With
    ``newlines_as_terminator`` the line breaks inside values are written as the file's line terminator
    (CRLF files get CRLF inside quoted multi-line values too). The file is written under a temporary
    name and moved into place, so a failed write leaves no half file. ``on_batch`` gets the row count
    written so far after every batch.
    """
    if len(policies) != len(header):
        raise ValueError(f"{path.name}: {len(header)} columns but {len(policies)} quote policies")
    term = fmt.line_terminator
    single = len(header) == 1
    tmp = path.with_name(path.name + ".tmp")
    rows = 0
    size = 0
    try:
        with open(tmp, "wb") as fh:
            if fmt.byte_order_mark:
                fh.write(_BOM)
                size += len(_BOM)
            head_policy = "always" if fmt.quote_header else "never"
            data = (",".join(format_column(list(header), head_policy, "<header>")) + term).encode("utf-8")
            fh.write(data)
            size += len(data)
            for batch in batches:
                if len(batch) != len(header):
                    raise ValueError(f"{path.name}: batch has {len(batch)} columns, header {len(header)}")
                cols = []
                newline = term if newlines_as_terminator else None
                for name, values, policy in zip(header, batch, policies, strict=True):
                    text = format_column(values, policy, name, newline)
                    if single and policy != "never":
                        text = [t or '""' for t in text]
                    cols.append(text)
                n = len(cols[0])
                if any(len(c) != n for c in cols):
                    raise ValueError(f"{path.name}: columns of one batch differ in length")
                if n == 0:
                    continue
                lines = cols[0] if single else [",".join(r) for r in zip(*cols, strict=True)]
                data = (term.join(lines) + term).encode("utf-8")
                fh.write(data)
                size += len(data)
                rows += n
                if on_batch is not None:
                    on_batch(rows)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return TableStats(rows=rows, bytes=size)
