"""How long work reports its progress: a small protocol the library calls and the CLI renders with rich."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """One line per task ``key``: created on first update, then advanced or set."""

    def update(self, key: str, *, description: str | None = None, completed: float | None = None,
               total: float | None = None, advance: float = 0) -> None: ...


class Silent:
    """Progress nobody watches (tests, library calls)."""

    def update(self, key: str, *, description: str | None = None, completed: float | None = None,
               total: float | None = None, advance: float = 0) -> None:
        return None


SILENT = Silent()
