"""The one reader of the windows in Cassandra's serving tables, for the live dashboard, the demo and the CLI.

The tables (generated from the topic contracts, ``contracts/generated/cassandra/``) are partitioned by the UTC
day of the window start and the payment type, and clustered by ``window_end DESC``: a range of windows is one
query over the days it spans times the contract's payment types. :func:`read_windows` reads the windows that
ended in a span (by default the last minutes before the newest window, so the latest windows show even when
the stream stopped a while ago). The live view (``pipeline.serving.live``) merges them with the batch layer's.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import TYPE_CHECKING, Any

from pipeline.contracts import load_registry, stream_names
from pipeline.contracts.render_cassandra import CassandraTable, serving_tables

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
    query = _prepared(session, f"SELECT count(*) FROM {table.qualified_name} WHERE {table.partition_key[0]} = ?")
    return sum(int(session.execute(query, [today - dt.timedelta(days=d)], timeout=30).one()[0]) for d in range(days))

