"""The live view: the serving layer merging the two lanes' windows, read by the dashboard and by `olist windows`.

The batch layer's windows (gold, recomputed from the raw archive) are shown up to the batch watermark (the newest
commit time the archive holds); the speed layer's windows (Cassandra) after it. Each row says which layer it
came from, and the view carries the last reconciliation's result. :func:`read_live` is the one query function;
:class:`LiveReader` serves it to the dashboard and never raises.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from emulation.resources import engine
from pipeline.contracts import load_registry, stream_names
from pipeline.serving.windows import count_late_events, newest_window_end, read_windows
from pipeline.settings import Settings

if TYPE_CHECKING:
    from cassandra.cluster import Session

    from pipeline.reconcile import ReconcileReport

log = logging.getLogger(__name__)


class Warehouse(Protocol):
    """What the live view needs of the warehouse: parameterised reads (the dashboard's snapshot has it)."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...


@dataclass
class LiveData:
    aggregated: list[dict[str, Any]] = field(default_factory=list)  # each row's "layer": batch or speed
    installments: list[dict[str, Any]] = field(default_factory=list)
    late_events: int | None = None
    batch_watermark: dt.datetime | None = None  # batch windows up to here, speed windows after
    reconciliation: ReconcileReport | None = None
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
LiveWindows = LiveData  # what `olist windows` shows


def _aware(value: Any) -> Any:
    return value.replace(tzinfo=dt.UTC) if isinstance(value, dt.datetime) and value.tzinfo is None else value


def batch_watermark(warehouse: Warehouse | None) -> dt.datetime | None:
    """The newest commit time the batch layer's windows include, or None (no batch view yet)."""
    if warehouse is None:
        return None
    try:
        rows = warehouse.query("select newest_commit_at from gold.mart_payments_batch_watermark")
    except Exception:  # no batch view built yet
        log.debug("no batch watermark", exc_info=True)
        return None
    return _aware(rows[0]["newest_commit_at"]) if rows and rows[0]["newest_commit_at"] else None


def _batch_rows(warehouse: Warehouse, topic: str, since: dt.datetime, until: dt.datetime) -> list[dict[str, Any]]:
    view = load_registry().dataset(topic).custom_property("batchView")
    rows = warehouse.query(f"select * from gold.{view} where window_end > ? and window_end <= ?",
                           [since.replace(tzinfo=None), until.replace(tzinfo=None)])
    return [{k: _aware(v) for k, v in r.items()} | {"layer": "batch"} for r in rows]


def merged(session: Session, warehouse: Warehouse | None, topic: str, since: dt.datetime, until: dt.datetime,
           watermark: dt.datetime | None) -> list[dict[str, Any]]:
    """``topic``'s windows ending in (since, until]: the batch layer's up to ``watermark``, the speed layer's after."""
    minutes = (until - since).total_seconds() / 60
    speed = [r | {"layer": "speed"} for r in read_windows(session, topic, minutes, until)
             if watermark is None or r["window_end"] > watermark]
    batch = _batch_rows(warehouse, topic, since, min(until, watermark)) if warehouse and watermark and \
        watermark > since else []
    key = load_registry().dataset(topic).primary_key
    return sorted(batch + speed, key=lambda r: (r["window_end"], *(str(r[k]) for k in key)))


def read_live(session: Session, warehouse: Warehouse | None, lookback_minutes: float = 60,
              settings: Settings | None = None) -> LiveData:
    """The live view: the last ``lookback_minutes`` before the newest window of either layer."""
    from pipeline.reconcile import last_report

    names = stream_names()
    watermark = batch_watermark(warehouse)
    newest = max((t for t in (newest_window_end(session, names.aggregated), watermark) if t), default=None)
    try:
        late: int | None = count_late_events(session)
    except Exception:  # an unexpected shape means "not available" (shown as n/a), never an error on the page
        log.debug("late events unavailable", exc_info=True)
        late = None
    data = LiveData(late_events=late, batch_watermark=watermark,
                    reconciliation=last_report(settings) if settings else None)
    if newest is None:
        return data
    since = newest - dt.timedelta(minutes=lookback_minutes)
    data.aggregated = merged(session, warehouse, names.aggregated, since, newest, watermark)
    data.installments = merged(session, warehouse, names.installments, since, newest, watermark)
    return data


class LiveReader:
    """Reads :class:`LiveData` from the Cassandra named by ``settings`` (and the warehouse's batch windows),
    keeping one driver session (reopened after a failure); never raises."""

    def __init__(self, settings: Settings, warehouse: Warehouse | None = None, lookback_minutes: float = 60) -> None:
        self.settings, self.warehouse = settings, warehouse
        self.lookback_minutes = lookback_minutes
        self._cluster = None
        self._session = None
        self._lock = threading.Lock()

    def _connect(self) -> Session:

        service = engine("cassandra", self.settings)
        if not service.available():
            raise ConnectionError("Cassandra is not running (start it with `olist up cassandra`)")
        self._cluster = service.cluster("reader", timeout=5, metadata=False)
        self._session = self._cluster.connect()
        return self._session

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.shutdown()
        self._cluster = self._session = None

    def __call__(self) -> LiveData:
        with self._lock:
            try:
                return read_live(self._session or self._connect(), self.warehouse, self.lookback_minutes,
                                 self.settings)
            except Exception as exc:
                self.close()
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if "unconfigured table" in message.lower() or "keyspace" in message.lower():
                    message = "the serving tables do not exist yet (no windows have been written)"
                return LiveData(error=message)


class _DuckDB:
    """The warehouse file itself as a :class:`Warehouse` (the CLI's reads)."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.warehouse_path

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        import duckdb

        try:
            con = duckdb.connect(str(self.path), read_only=True)
        except duckdb.ConnectionException:  # this process already has it open (dbt ran here): share that
            con = duckdb.connect(str(self.path))
        with con:
            cur = con.execute(sql, list(params))
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def live_windows(settings: Settings, minutes: float = 5) -> LiveData:
    """`olist windows`: the live view of the last ``minutes`` (an error in ``error``, never raised)."""
    warehouse = _DuckDB(settings) if settings.warehouse_path.exists() else None
    reader = LiveReader(settings, warehouse, minutes)
    try:
        return reader()
    finally:
        reader.close()
