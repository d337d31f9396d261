"""The Flink job's windows computed independently in plain Python, from the same Debezium events: the reference
the tests hold flink/payments_windows.py to, value for value (see flink/README.md for the semantics).

* Snapshot reads (op = r) are history, not live payments: skipped (they still move the watermark).
* Each payment's current streamed version is kept by primary key, in topic order: an insert or update
  replaces it (an update retracts the old version from ITS window), a delete removes it, a tombstone is
  skipped. A window record aggregates the current versions whose commit time (``source.ts_ms``) falls in
  it; a window and type with none has no record.
* The watermark before an event is the largest commit time seen so far minus the delay; a streamed event whose
  commit time is below it is late: it is applied all the same, and reported, once: a redelivery of a reported
  change (same key, op, commit time and ``source.lsn``; Debezium is at-least-once) is not reported again.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

Key = tuple[str, int]


def _ts(ms: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ms)  # naive UTC, as Flink's TIMESTAMP(3)


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


@dataclass
class Windows:
    """What the job's three topics hold once every event is processed (windowed topics read as tables)."""

    aggregated: dict[tuple[dt.datetime, str], dict[str, Any]] = field(default_factory=dict)
    installments: dict[tuple[dt.datetime, str, int], dict[str, Any]] = field(default_factory=dict)
    late: list[dict[str, Any]] = field(default_factory=list)


def compute(
    events: Iterable[Mapping[str, Any] | None], window_ms: int = 10_000, watermark_delay_ms: int = 2_000
) -> Windows:
    """The windows of a sequence of Debezium envelopes (``None`` = tombstone) in topic order."""
    current: dict[Key, tuple[Mapping[str, Any], int]] = {}
    watermark: int | None = None
    reported: set[tuple[str, int, str, int, Any]] = set()
    out = Windows()
    for event in events:
        if event is None:
            continue
        op, commit = event["op"], int(event["source"]["ts_ms"])
        row = event["after"] if op in ("c", "r", "u") else event["before"]
        key = (row["order_id"], int(row["payment_sequential"]))
        change = (*key, op, commit, event["source"].get("lsn"))
        if op != "r" and watermark is not None and commit < watermark and change not in reported:
            reported.add(change)
            start = commit - commit % window_ms
            out.late.append(
                {
                    "order_id": key[0],
                    "payment_sequential": key[1],
                    "op": op,
                    "payment_type": row["payment_type"],
                    "commit_time": _ts(commit),
                    "window_start": _ts(start),
                    "watermark_time": _ts(watermark),
                }
            )
        watermark = commit - watermark_delay_ms if watermark is None else max(watermark, commit - watermark_delay_ms)
        if op == "r":
            continue
        if op == "d":
            current.pop(key, None)
        else:
            current[key] = (row, commit)

    groups: dict[tuple[int, str], list[Decimal]] = defaultdict(list)
    counts: dict[tuple[int, str, int], int] = defaultdict(int)
    for row, commit in current.values():
        start = commit - commit % window_ms
        groups[start, row["payment_type"]].append(_money(row["payment_value"]))
        counts[start, row["payment_type"], int(row["payment_installments"])] += 1
    for (start, ptype), values in groups.items():
        total = sum(values, Decimal("0.00"))
        out.aggregated[_ts(start), ptype] = {
            "window_start": _ts(start),
            "window_end": _ts(start + window_ms),
            "payment_type": ptype,
            "payment_count": len(values),
            "payment_sum": total,
            "payment_avg": float(total) / len(values),
            "payment_min": min(values),
            "payment_max": max(values),
        }
    for (start, ptype, inst), n in counts.items():
        out.installments[_ts(start), ptype, inst] = {
            "window_start": _ts(start),
            "window_end": _ts(start + window_ms),
            "payment_type": ptype,
            "payment_installments": inst,
            "installment_count": n,
        }
    return out
