"""The one reader of the windows in Cassandra's serving tables, for the live dashboard, the demo and the CLI.

The tables (generated from the topic contracts, ``contracts/generated/cassandra/``) are partitioned by the UTC
day of the window start and the payment type, and clustered by ``window_end DESC``: a range of windows is one
query over the days it spans times the contract's payment types. :func:`read_windows` reads the windows that
ended in a span (by default the last minutes before the newest window, so the latest windows show even when
the stream stopped a while ago); :class:`CassandraReader` serves :class:`LiveData` to the dashboard and never
raises.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.contracts import load_registry, stream_names
from pipeline.contracts.render_cassandra import CassandraTable, serving_tables
from pipeline.settings import Settings

if TYPE_CHECKING:
    from cassandra.cluster import Session

MAX_WINDOW = dt.timedelta(hours=1)  # windows are shorter: a window ending after ``since`` began after since - 1 h
DAYS_BACK = 7  # the tables' TTL: older windows are gone
log = logging.getLogger(__name__)


@functools.cache
def table_of(topic: str) -> CassandraTable:
    return next(t for t in serving_tables(load_registry()) if t.topic == topic)


@functools.lru_cache(maxsize=64)
def _prepared(session: Session, cql: str) -> Any:
    return session.prepare(cql)


def _days(since: dt.datetime, until: dt.datetime) -> list[dt.date]:
    days, day = [], since.date()
    while day <= until.date():
        days.append(day)
        day += dt.timedelta(days=1)
    return days


def _partition_values(table: CassandraTable, since: dt.datetime, until: dt.datetime) -> list[list[Any]]:
    """Every value of each partition-key column between ``since`` and ``until``: the UTC days of the day column,
    the contract's enum of each other (the payment types)."""
    ds = load_registry().dataset(table.topic)
    values = []
    for name in table.partition_key:
        col = next(c for c in table.columns if c.name == name)
        if col.source:
            values.append(_days(since, until))
        elif enum := ds.column(name).enum:
            values.append(list(enum))
        else:
            raise ValueError(f"{table.name}: partition column {name} has no enum to enumerate")
    return values


def _plain(row: Any) -> dict[str, Any]:
    from cassandra.util import Date as CqlDate

    record = row._asdict()
    for key, value in record.items():
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            record[key] = value.replace(tzinfo=dt.UTC)
        elif isinstance(value, CqlDate):
            record[key] = value.date()
    return record


def newest_window_end(session: Session, topic: str, now: dt.datetime | None = None) -> dt.datetime | None:
    """The end of the newest window of ``topic``'s table in the last :data:`DAYS_BACK` days, or None."""
    table = table_of(topic)
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    parts = _partition_values(table, now - dt.timedelta(days=DAYS_BACK), now)
    order = table.clustering[0][0]
    where = " AND ".join(f"{k} IN ?" for k in table.partition_key)
    query = _prepared(session, f"SELECT {order} FROM {table.qualified_name} WHERE {where} PER PARTITION LIMIT 1")
    ends = [_plain(r)[order] for r in session.execute(query, parts, timeout=30)]
    return max(ends, default=None)


def read_windows(session: Session, topic: str | None = None, minutes: float = 15,
                 until: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The rows of ``topic``'s table (default: the aggregated windows) whose window ended in the ``minutes``
    up to ``until`` (default: the newest window's end), oldest first; timestamps as aware UTC datetimes."""
    topic = topic or stream_names().aggregated
    table = table_of(topic)
    until = until.astimezone(dt.UTC) if until else newest_window_end(session, topic)
    if until is None:
        return []
    since = until - dt.timedelta(minutes=minutes)
    parts = _partition_values(table, since - MAX_WINDOW, until)
    where = " AND ".join(f"{k} IN ?" for k in table.partition_key)
    order = table.clustering[0][0]
    query = _prepared(session, f"SELECT * FROM {table.qualified_name} WHERE {where} AND {order} > ? "
                               f"AND {order} <= ?")
    out = [_plain(r) for r in session.execute(query, [*parts, since, until], timeout=30)]
    out.sort(key=lambda r: (r[order], *(r[c] for c in table.primary_key if c != order)))
    return out


def count_late_events(session: Session, days: int = 2, today: dt.date | None = None) -> int:
    """Late changes Flink reported, over the windows of the last ``days`` UTC days (today included)."""
    table = table_of(stream_names().late)
    today = today or dt.datetime.now(dt.UTC).date()
    query = _prepared(session, f"SELECT count(*) FROM {table.qualified_name} WHERE {table.partition_key[0]} IN ?")
    return int(session.execute(query, [[today - dt.timedelta(days=d) for d in range(days)]], timeout=30).one()[0])


def summarize(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """What the dashboard's headline shows, from aggregated rows: total value and count, by payment type."""
    by_type: dict[str, dict[str, Any]] = {}
    total, count = decimal.Decimal(0), 0
    for r in rows:
        t = by_type.setdefault(r["payment_type"], {"payment_count": 0, "payment_sum": decimal.Decimal(0)})
        t["payment_count"] += r["payment_count"]
        t["payment_sum"] += r["payment_sum"]
        total += r["payment_sum"]
        count += r["payment_count"]
    return {"payment_sum": total, "payment_count": count, "by_payment_type": by_type}


# -- the live view's source ----------------------------------------------------------------------


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


LiveSource = Callable[[], LiveData]


def read_live(session: Session, lookback_minutes: float = 60) -> LiveData:
    names = stream_names()
    until = newest_window_end(session, names.aggregated)
    try:
        late: int | None = count_late_events(session)
    except Exception:  # an unexpected shape means "not available" (shown as n/a), never an error on the page
        log.debug("late events unavailable", exc_info=True)
        late = None
    if until is None:
        return LiveData(late_events=late)
    return LiveData(aggregated=read_windows(session, names.aggregated, lookback_minutes, until),
                    installments=read_windows(session, names.installments, lookback_minutes, until),
                    late_events=late)


class CassandraReader:
    """Reads :class:`LiveData` from the Cassandra named by ``settings``, keeping one driver session (reopened
    after a failure); never raises."""

    def __init__(self, settings: Settings, lookback_minutes: float = 60) -> None:
        self.settings = settings
        self.lookback_minutes = lookback_minutes
        self._cluster = None
        self._session = None
        self._lock = threading.Lock()

    def _connect(self) -> Session:
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
            try:
                return read_live(self._session or self._connect(), self.lookback_minutes)
            except Exception as exc:
                self.close()
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if "unconfigured table" in message.lower() or "keyspace" in message.lower():
                    message = "the serving tables do not exist yet (no windows have been written)"
                return LiveData(error=message)


def latest_windows(settings: Settings, minutes: float = 15, topic: str | None = None) -> list[dict[str, Any]]:
    """:func:`read_windows` on the Cassandra named by ``settings``: the last ``minutes`` up to now."""
    from emulation.cassandra import CassandraService

    with CassandraService(settings).session(stream_names().keyspace) as session:
        return read_windows(session, topic, minutes, dt.datetime.now(dt.UTC))
