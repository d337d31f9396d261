"""Tables held column-wise as numpy arrays, turned into text one batch at a time.

A :class:`Frame` maps column names to :class:`Col` (an array plus a function that renders a slice of
it as strings, ``None`` for null), so a million-row table never exists as Python strings all at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

TS_NULL = np.iinfo(np.int64).min  # the bit pattern of NaT: null timestamp in int64 seconds
INT_NULL = -1  # null in non-negative integer columns
DAY = 86_400

Render = Callable[[np.ndarray], list]


@dataclass(frozen=True)
class Col:
    """One column: its values and how to render a slice of them as text."""

    values: np.ndarray
    render: Render


@dataclass(frozen=True)
class Frame:
    """A table: named columns of equal length."""

    name: str
    columns: dict[str, Col]

    def __post_init__(self) -> None:
        lengths = {len(c.values) for c in self.columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"{self.name}: columns differ in length {sorted(lengths)}")

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values())).values) if self.columns else 0

    def batches(self, names: Sequence[str], size: int) -> Iterator[list[list[str | None]]]:
        """Rendered columns ``names`` (in that order), ``size`` rows at a time."""
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise KeyError(f"{self.name}: the generator makes no column {', '.join(missing)}")
        cols = [self.columns[n] for n in names]
        for start in range(0, self.n_rows, size):
            yield [c.render(c.values[start : start + size]) for c in cols]


def hex_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct 32-character lowercase hex ids drawn from ``rng`` (object array)."""
    while True:
        raw = rng.bytes(16 * n).hex()
        ids = [raw[i : i + 32] for i in range(0, 32 * n, 32)]
        if len(set(ids)) == n:
            return np.array(ids, dtype=object)


def text(values: np.ndarray) -> Col:
    """An object array of str (or None)."""
    return Col(values, lambda a: a.tolist())


def lookup(codes: np.ndarray, labels: Sequence[str | None] | np.ndarray) -> Col:
    """Integer codes into ``labels``; code -1 is null."""
    table = np.empty(len(labels) + 1, dtype=object)
    table[:-1] = list(labels)
    table[-1] = None
    return Col(np.asarray(codes), lambda a: table[a].tolist())


def _render_timestamps(a: np.ndarray) -> list[str | None]:
    s = np.datetime_as_string(a.view("datetime64[s]"), unit="s")
    width = s.dtype.itemsize // 4
    if width > 10:
        s.view(np.uint32).reshape(len(s), width)[:, 10] = ord(" ")
    out = s.tolist()
    for i in np.flatnonzero(a == TS_NULL).tolist():
        out[i] = None
    return out


def timestamps(seconds: np.ndarray) -> Col:
    """int64 seconds since the epoch, rendered ``YYYY-MM-DD HH:MM:SS``; :data:`TS_NULL` is null."""
    return Col(np.asarray(seconds, dtype=np.int64), _render_timestamps)


def money(cents: np.ndarray) -> Col:
    """int64 cents rendered with two decimals (``58.90``)."""
    return Col(np.asarray(cents, dtype=np.int64), lambda a: [f"{c // 100}.{c % 100:02d}" for c in a.tolist()])


def integers(values: np.ndarray) -> Col:
    """Non-negative integers; :data:`INT_NULL` is null."""
    return Col(
        np.asarray(values, dtype=np.int64),
        lambda a: [None if v == INT_NULL else str(v) for v in a.tolist()],
    )


def floats(values: np.ndarray) -> Col:
    """float64 rendered as the shortest text that reads back to the same number."""
    return Col(np.asarray(values, dtype=np.float64), lambda a: list(map(repr, a.tolist())))
