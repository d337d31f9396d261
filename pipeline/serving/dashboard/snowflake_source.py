"""The BI views on the Snowflake target: the same SQL as on DuckDB, against the gold schema dbt's snowflake
target builds (``<SNOWFLAKE_DATABASE>.gold``).

:class:`SnowflakeWarehouse` has :class:`~pipeline.serving.dashboard.warehouse.WarehouseSnapshot`'s surface
(``query``, ``refresh``, ``close``), so every function in :mod:`pipeline.serving.dashboard.warehouse` runs on
either. Offline (``SNOWFLAKE_ACCOUNT`` unset) it reads fakesnow, started the way `olist promote` starts it;
fakesnow keeps its databases under the state folder, so what `olist promote` built is still there.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from pipeline.batch.promote import connect
from pipeline.serving.dashboard.warehouse import WarehouseUnavailable
from pipeline.settings import SnowflakeSettings


def _pyformat(sql: str) -> str:
    """The warehouse functions' ``?`` placeholders in the connector's default (pyformat) style."""
    return sql.replace("%", "%%").replace("?", "%s")


class SnowflakeWarehouse:
    """One connector session, shared by the dashboard's threads under a lock; reopened after an error."""

    def __init__(self, sf: SnowflakeSettings) -> None:
        self.sf = sf
        self._lock = threading.Lock()
        self._conn = None

    def _connection(self):
        if self._conn is None or self._conn.is_closed():
            conn = connect(self.sf)
            conn.cursor().execute(f"use database {self.sf.database}")
            self._conn = conn
        return self._conn

    def refresh(self) -> None:
        """Snowflake serves the current gold itself: only (re)open the session."""
        import snowflake.connector

        with self._lock:
            try:
                self._connection()
            except snowflake.connector.Error as exc:
                self._drop()
                raise WarehouseUnavailable(f"Snowflake not reachable: {exc}") from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        import snowflake.connector

        with self._lock:
            try:
                cur = self._connection().cursor()
                if params:
                    cur.execute(_pyformat(sql), list(params))
                else:
                    cur.execute(sql)
                names = [d[0].lower() for d in cur.description]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            except snowflake.connector.Error as exc:
                self._drop()
                raise WarehouseUnavailable(f"Snowflake gold not readable (run `olist promote`?): {exc}") from exc

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a broken session may fail too; it is gone either way
                conn.close()

    def close(self) -> None:
        with self._lock:
            self._drop()
