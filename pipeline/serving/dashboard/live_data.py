"""The live view's data access: the newest windows in Cassandra's serving tables (``olist_streaming``).

The tables (generated from the topic contracts, ``contracts/generated/cassandra/olist_streaming.cql``) are
partitioned by ``(window_date, payment_type)`` and clustered by ``window_end DESC``: one query over the last
few days' partitions times the contract's payment types, the newest rows of each partition first, gives the
latest windows even when the stream stopped a while ago (the freshness indicator then says how old they are).
Every read returns :class:`LiveData`; when Cassandra is not running or holds no windows yet, ``error`` or an
empty ``aggregated`` says so instead of raising.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.settings import Settings

KEYSPACE = "olist_streaming"
AGGREGATED = "olist_payments_aggregated_windowed"
INSTALLMENTS = "olist_payments_installments_windowed"
DAYS_BACK = 7  # the tables' TTL: older windows are gone
PER_PARTITION = 2000  # newest rows read per (day, payment type)
log = logging.getLogger(__name__)


@dataclass
class LiveData:
    aggregated: list[dict[str, Any]] = field(default_factory=list)
    installments: list[dict[str, Any]] = field(default_factory=list)
    late_events: int | None = None
    error: str | None = None
    read_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def newest_window_end(self) -> dt.datetime | None:
        return max((r["window_end"] for r in self.aggregated), default=None)

    @property
    def age_seconds(self) -> float | None:
        newest = self.newest_window_end
        return None if newest is None else (self.read_at - newest).total_seconds()


@functools.cache
def payment_types() -> tuple[str, ...]:
    """The payment types the contract allows: the values of the partition key's second column."""
    from pipeline.contracts import load_registry

    enum = load_registry().dataset(AGGREGATED).column("payment_type").enum
    return tuple(enum or ("credit_card", "boleto", "voucher", "debit_card", "not_defined"))


def _utc(value: Any) -> Any:
    return value.replace(tzinfo=dt.UTC) if isinstance(value, dt.datetime) and value.tzinfo is None else value


def read_windows(session, table: str, lookback_minutes: float = 60, now: dt.datetime | None = None,
                 keyspace: str = KEYSPACE) -> list[dict[str, Any]]:
    """The rows of ``table`` whose window ended within ``lookback_minutes`` of its newest window, oldest first."""
    now = now or dt.datetime.now(dt.UTC)
    days = [now.date() - dt.timedelta(days=i) for i in range(DAYS_BACK + 1)]
    query = session.prepare(f"SELECT * FROM {keyspace}.{table} WHERE window_date IN ? AND payment_type IN ? "
                            f"PER PARTITION LIMIT {PER_PARTITION}")
    rows = [{k: _utc(v) for k, v in r._asdict().items()}
            for r in session.execute(query, [days, list(payment_types())], timeout=20)]
    if not rows:
        return []
    newest = max(r["window_end"] for r in rows)
    since = newest - dt.timedelta(minutes=lookback_minutes)
    rows = [r for r in rows if r["window_end"] > since]
    rows.sort(key=lambda r: (r["window_end"], r["payment_type"], r.get("payment_installments") or 0))
    return rows


def late_events(session) -> int | None:
    """Changes that reached Flink behind its watermark (still counted in their windows), today and yesterday,
    from the serving table of `olist_payments_late_events`; None (shown as "n/a") when it cannot be read."""
    from pipeline.speed.sink import count_late_events

    try:
        return count_late_events(session)
    except Exception:  # an unexpected shape means "not available", never an error on the page
        log.debug("late events unavailable", exc_info=True)
        return None


def read_live(session, lookback_minutes: float = 60) -> LiveData:
    return LiveData(aggregated=read_windows(session, AGGREGATED, lookback_minutes),
                    installments=read_windows(session, INSTALLMENTS, lookback_minutes),
                    late_events=late_events(session))


class CassandraReader:
    """Reads :class:`LiveData` from the local Cassandra named by ``settings``, keeping one driver session
    (reopened after a failure); never raises."""

    def __init__(self, settings: Settings, lookback_minutes: float = 60) -> None:
        self.settings = settings
        self.lookback_minutes = lookback_minutes
        self._cluster = None
        self._session = None
        self._lock = threading.Lock()

    def _connect(self):
        from emulation.cassandra import CassandraService, cluster

        service = CassandraService(self.settings)
        ep = service.endpoint()
        if ep is None or service.pid() is None:
            raise ConnectionError("Cassandra is not running (start it with `olist up cassandra`)")
        self._cluster = cluster(ep.host, ep.port, timeout=5, metadata=False)
        self._session = self._cluster.connect()
        return self._session

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.shutdown()
        self._cluster = self._session = None

    def __call__(self) -> LiveData:
        with self._lock:
            return self._read()

    def _read(self) -> LiveData:
        try:
            session = self._session or self._connect()
            return read_live(session, self.lookback_minutes)
        except Exception as exc:
            self.close()
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "unconfigured table" in message.lower() or "keyspace" in message.lower():
                message = "the serving tables do not exist yet (no windows have been written)"
            return LiveData(error=message)


LiveSource = Callable[[], LiveData]
