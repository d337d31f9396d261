"""Report fields that are sums over the report's rows (rows loaded, bytes written, seconds spent)."""

from __future__ import annotations

from typing import Any


class Total:
    """A read-only attribute: the sum of ``field`` over the items of the list attribute ``rows``."""

    def __init__(self, rows: str, field: str) -> None:
        self.rows, self.field = rows, field

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return sum(getattr(row, self.field) for row in getattr(obj, self.rows))
