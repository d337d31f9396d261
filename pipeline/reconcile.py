"""`olist reconcile`: the batch layer's windows, recomputed from the raw archive, against the speed layer's windows
in Cassandra, value for value.

A consistent cut without stopping the stream: the archive is brought up to the raw topic's end (offsets ``A``),
the Flink job must have committed at least ``A``, and the sink writes everything Flink committed. The batch view
(dbt, from the archive) then holds every change before ``A``; Cassandra holds those and maybe some after. A window
touched by a change at or after ``A`` (its own window, or the window of the version it replaced) is still open
and left out; every other window must be equal in both, or it is a difference, named with both values.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from emulation.resources import engine
from emulation.service import ServiceError
from pipeline.contracts import load_registry, stream_names
from pipeline.progress import SILENT, Progress
from pipeline.settings import Settings

AGGREGATE_VALUES = ("payment_count", "payment_sum", "payment_min", "payment_max", "payment_avg")
INSTALLMENT_VALUES = ("installment_count",)


@dataclass(frozen=True)
class WindowDifference:
    view: str  # the windowed topic
    window_start: str
    window_end: str
    key: tuple  # the window's other key columns (payment type, installments)
    batch: dict[str, Any] | None  # None: the window is not in the batch view
    speed: dict[str, Any] | None  # None: the window is not in Cassandra

    def __str__(self) -> str:
        return f"{self.view} {self.window_start}..{self.window_end} {'/'.join(map(str, self.key))}: " \
               f"batch {self.batch} vs speed {self.speed}"


@dataclass
class ReconcileReport:
    archived_through: dict[int, int]  # the archive's next offset per partition (the cut)
    watermark: str | None  # the newest commit time in the archive (ISO, UTC)
    compared: dict[str, int] = field(default_factory=dict)  # per view: windows compared
    equal: dict[str, int] = field(default_factory=dict)
    open_windows: int = 0  # windows touched by changes after the cut, left out
    differences: list[WindowDifference] = field(default_factory=list)
    reconciled_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    @property
    def ok(self) -> bool:
        return not self.differences and sum(self.compared.values()) > 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> ReconcileReport:
        raw = json.loads(text)
        raw["archived_through"] = {int(k): v for k, v in raw["archived_through"].items()}
        raw["differences"] = [WindowDifference(**{**d, "key": tuple(d["key"])}) for d in raw["differences"]]
        return cls(**raw)


def last_report_path(settings: Settings) -> Path:
    return settings.state_dir / "reconcile" / "last.json"


def last_report(settings: Settings) -> ReconcileReport | None:
    """The last reconciliation's report, or None before the first."""
    path = last_report_path(settings)
    return ReconcileReport.from_json(path.read_text()) if path.exists() else None


# -- the cut -------------------------------------------------------------------------------------


def _caught_up(have: dict[int, int], want: dict[int, int]) -> bool:
    return all(have.get(p, 0) >= o for p, o in want.items())


def _cut(settings: Settings, timeout: float, progress: Progress) -> dict[int, int]:
    """Bring the archive up to the raw topic's end and wait for Flink and the sink; the archive's offsets. The
    archive and the sink services do the work when they run; otherwise a pass of each runs here."""
    from pipeline.lake import ArchiveLayout
    from pipeline.speed.archive import ArchiveBusy
    from pipeline.speed.lane import archive_raw
    from pipeline.speed.services import SinkService
    from pipeline.speed.sink import GROUP, run_sink
    from pipeline.speed.topics import committed_offsets, end_offsets, pending, wait_until
    from pipeline.storage import s3_location

    names, client = stream_names(), engine("kafka", settings).client_config()
    layout = ArchiveLayout(s3_location(settings), settings.raw_prefix, names.raw)
    ends = end_offsets(client, names.raw)
    progress.update("cut", description="archiving up to the topic's end", total=None)
    if not _caught_up(layout.progress(), ends):
        try:
            archive_raw(settings, idle=2)
        except ArchiveBusy:  # the archive service is on it
            wait_until(lambda: _caught_up(layout.progress(), ends), timeout)
    cut = layout.progress()
    if not _caught_up(cut, ends):
        raise ServiceError(f"reconcile: the archive reached {cut}, not the topic's end {ends}, within {timeout:.0f} s")
    progress.update("cut", description="waiting for Flink to pass the cut")
    group = f"{settings.flink.group_id}-events"
    if not wait_until(lambda: _caught_up(committed_offsets(client, group, names.raw), cut), timeout, 1.0):
        raise ServiceError(f"reconcile: the Flink job ({group}) has not committed offsets {cut} within "
                           f"{timeout:.0f} s: is it running (`olist up flink`)?")
    progress.update("cut", description="sinking what Flink committed")
    if SinkService(settings).health():
        if not wait_until(lambda: pending(client, GROUP, names.served) == 0, timeout, 1.0):
            raise ServiceError(f"reconcile: the sink has not caught up within {timeout:.0f} s")
    else:
        run_sink(settings, until_idle=3)
    progress.update("cut", description="cut taken", total=1, completed=1)
    return cut


def _open_windows(settings: Settings, cut: dict[int, int], current: dict[tuple, int], window_ms: int) -> set[int]:
    """Window starts touched by a change at or after the cut: its own window and the one of the version it replaces
    (``current``: each key's window start in the batch view)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition


    names, client = stream_names(), engine("kafka", settings).client_config()
    consumer = Consumer({**client, "group.id": "olist-reconcile", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "enable.partition.eof": True})
    consumer.assign([TopicPartition(names.raw, p, o) for p, o in cut.items()])
    touched, pending = set(), set(cut)
    try:
        while pending:
            msg = consumer.poll(2)
            if msg is None:
                break
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                continue
            if msg.value() is None:
                continue
            try:
                event = json.loads(msg.value())
                row = event.get("after") or event.get("before")
                key = (row["order_id"], int(row["payment_sequential"]))
                commit = int(event["source"]["ts_ms"])
            except (ValueError, TypeError, KeyError, AttributeError):
                continue  # a record breaking the contract changes no window
            touched.add(commit - commit % window_ms)
            if key in current:
                touched.add(current[key])
            current[key] = commit - commit % window_ms
    finally:
        consumer.close()
    return touched


# -- the two views -------------------------------------------------------------------------------


def _naive(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def _batch_views(settings: Settings) -> tuple[dict[str, dict[tuple, dict]], dict[tuple, int], str | None]:
    """Both batch marts by window key, each payment's current window start, and the watermark."""
    import duckdb

    registry, names = load_registry(), stream_names()
    views: dict[str, dict[tuple, dict]] = {}
    # dbt, run in this process, may still hold the file open: connect with the same (default) settings.
    with duckdb.connect(str(settings.warehouse_path)) as con:
        for topic in names.windowed:
            ds = registry.dataset(topic)
            cur = con.execute(f"select * from gold.{ds.custom_property('batchView')}")
            cols = [d[0] for d in cur.description]
            rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
            views[topic] = {tuple(_naive(r[k]) if isinstance(r[k], dt.datetime) else r[k] for k in ds.primary_key): r
                            for r in rows}
        current = {(o, s): w for o, s, w in con.execute(
            "select order_id, payment_sequential, window_start_ms from silver.int_payments__current_streamed"
        ).fetchall()}
        newest = con.execute("select newest_commit_at from gold.mart_payments_batch_watermark").fetchone()
    watermark = newest[0].replace(tzinfo=dt.UTC).isoformat() if newest and newest[0] else None
    return views, current, watermark


def _speed_views(settings: Settings, since: dt.datetime) -> dict[str, dict[tuple, dict]]:
    """Both windowed tables in Cassandra from ``since`` to now, by window key."""
    from pipeline.serving.windows import MAX_WINDOW, read_windows

    registry, names = load_registry(), stream_names()
    until = dt.datetime.now(dt.UTC) + MAX_WINDOW
    minutes = (until - since).total_seconds() / 60 + MAX_WINDOW.total_seconds() / 60
    views: dict[str, dict[tuple, dict]] = {}
    with engine("cassandra", settings).session(names.keyspace, role="reader") as session:
        for topic in names.windowed:
            key = registry.dataset(topic).primary_key
            views[topic] = {tuple(_naive(r[k]) if isinstance(r[k], dt.datetime) else r[k] for k in key): r
                            for r in read_windows(session, topic, minutes, until)}
    return views


def _same(values: tuple[str, ...], batch: dict, speed: dict) -> bool:
    for name in values:
        a, b = batch[name], speed[name]
        if isinstance(a, float) or isinstance(b, float):
            if not math.isclose(float(a), float(b), rel_tol=1e-9):
                return False
        elif Decimal(str(a)) != Decimal(str(b)):
            return False
    return True


def _plain(row: dict, values: tuple[str, ...]) -> dict:
    return {k: (str(row[k]) if isinstance(row[k], Decimal) else row[k]) for k in values}


def reconcile(settings: Settings, timeout: float = 180, progress: Progress = SILENT) -> ReconcileReport:
    """Take the cut, recompute the batch view from the archive (dbt), and compare every closed window."""
    from pipeline.batch.transform import refresh_bronze, run_dbt

    names = stream_names()
    window_ms = int(settings.flink.window_seconds * 1000)
    cut = _cut(settings, timeout, progress)
    progress.update("batch", description="recomputing the windows from the archive (dbt)", total=None)
    refresh_bronze(settings, [names.archive])
    run = run_dbt(["--quiet", "build", "--select", "stg_cdc__order_payments+"], settings)
    if not run.success:
        failed = [f"{r[0]}: {r[3]}" for r in run.results if r[1] not in ("success", "pass", "skipped")]
        raise ServiceError("reconcile: the batch recompute failed: " + "; ".join(failed[:3] or [run.error]))
    batch, current, watermark = _batch_views(settings)
    progress.update("batch", description="batch view built", total=1, completed=1)
    open_starts = _open_windows(settings, cut, dict(current), window_ms)
    starts = [k[0] for view in batch.values() for k in view]
    since = min(starts, default=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=1))
    speed = _speed_views(settings, since.replace(tzinfo=dt.UTC))
    report = ReconcileReport(cut, watermark)
    for topic, values in zip(names.windowed, (AGGREGATE_VALUES, INSTALLMENT_VALUES), strict=True):
        keys = set(batch[topic]) | set(speed[topic])
        closed = [k for k in keys if int(k[0].replace(tzinfo=dt.UTC).timestamp() * 1000) not in open_starts]
        report.open_windows += len(keys) - len(closed)
        report.compared[topic] = len(closed)
        report.equal[topic] = 0
        for k in sorted(closed, key=lambda k: tuple(map(str, k))):
            b, s = batch[topic].get(k), speed[topic].get(k)
            if b is not None and s is not None and _same(values, b, s):
                report.equal[topic] += 1
                continue
            report.differences.append(WindowDifference(
                topic, k[0].isoformat(), k[1].isoformat(), tuple(k[2:]),
                None if b is None else _plain(b, values), None if s is None else _plain(s, values)))
    path = last_report_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.to_json())
    return report
