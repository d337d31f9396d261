"""The pure-Python reference of the Flink job's windows (tests/reference/windows.py): its semantics on small cases."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from tests.reference.windows import compute

T0 = 1_800_000_000_000  # a 10 s window boundary


def ev(op, before, after, ms):
    return {"op": op, "before": before, "after": after, "ts_ms": ms, "source": {"ts_ms": ms}}


def r(order, ptype="boleto", inst=1, value=10.0, seq=1):
    return {
        "order_id": order * 32,
        "payment_sequential": seq,
        "payment_type": ptype,
        "payment_installments": inst,
        "payment_value": value,
    }


def at(ms):
    return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ms)


def test_an_update_moves_the_payment_to_the_window_of_its_commit_and_a_delete_removes_it():
    a1, a2, b = r("a", value=10.5), r("a", "voucher", 2, 20.25), r("b", value=4.5)
    out = compute(
        [
            ev("c", None, a1, T0 + 1_000),
            ev("c", None, b, T0 + 2_000),
            ev("u", a1, a2, T0 + 12_000),
            ev("d", b, None, T0 + 13_000),
            None,
        ],
        10_000,
        2_000,
    )
    assert list(out.aggregated) == [(at(T0 + 10_000), "voucher")]
    rec = out.aggregated[at(T0 + 10_000), "voucher"]
    assert (rec["payment_count"], rec["payment_sum"], rec["payment_min"]) == (1, Decimal("20.25"), Decimal("20.25"))
    assert rec["window_end"] == at(T0 + 20_000) and rec["payment_avg"] == 20.25
    assert out.installments == {
        (at(T0 + 10_000), "voucher", 2): {
            "window_start": at(T0 + 10_000),
            "window_end": at(T0 + 20_000),
            "payment_type": "voucher",
            "payment_installments": 2,
            "installment_count": 1,
        }
    }
    assert out.late == []


def test_events_behind_the_watermark_are_applied_and_reported():
    out = compute(
        [
            ev("c", None, r("a"), T0 + 12_000),
            ev("c", None, r("b"), T0 + 10_500),
            ev("c", None, r("c", value=1.0), T0 + 9_999),
        ],
        10_000,
        2_000,
    )
    assert [e["order_id"][0] for e in out.late] == ["c"], "10.5 s is within the delay, 9.999 s is not"
    assert out.late[0]["watermark_time"] == at(T0 + 10_000) and out.late[0]["window_start"] == at(T0)
    assert out.aggregated[at(T0), "boleto"]["payment_count"] == 1
    assert out.aggregated[at(T0 + 10_000), "boleto"]["payment_count"] == 2


def test_snapshot_reads_are_history_not_live_payments():
    """A payment only the snapshot saw counts nowhere; its update counts in the update's window; a snapshot
    row's delete removes nothing; a snapshot read again (a re-snapshot) changes no window, and is never late."""
    a, b, c = r("a", value=10.0), r("b", value=20.0), r("c", value=30.0)
    out = compute(
        [
            ev("r", None, a, T0 + 1_000),
            ev("r", None, b, T0 + 1_000),
            ev("r", None, c, T0 + 1_000),
            ev("u", b, {**b, "payment_value": 25.0}, T0 + 12_000),
            ev("d", c, None, T0 + 13_000),
            None,
            ev("r", None, {**b, "payment_value": 25.0}, T0 + 30_000),  # a re-snapshot of b
            ev("r", None, a, T0 + 1_000),  # and a snapshot read of a old enough to be behind the watermark
        ],
        10_000,
        2_000,
    )
    assert list(out.aggregated) == [(at(T0 + 10_000), "boleto")]
    assert out.aggregated[at(T0 + 10_000), "boleto"]["payment_sum"] == Decimal("25.00")
    assert out.late == []


def test_a_late_change_redelivered_is_reported_once_and_two_changes_twice():
    """Debezium is at-least-once: a late change delivered again (the same log position) is one late change; two
    changes of one payment in one millisecond (two log positions) are two."""
    first = {**ev("u", r("a"), r("a", value=11.0), T0 + 1_000), "source": {"ts_ms": T0 + 1_000, "lsn": 7}}
    second = {**ev("u", r("a", value=11.0), r("a", value=12.0), T0 + 1_000), "source": {"ts_ms": T0 + 1_000, "lsn": 8}}
    out = compute([ev("c", None, r("b"), T0 + 12_000), first, first, second, first], 10_000, 2_000)
    assert [(e["order_id"][0], e["commit_time"]) for e in out.late] == [("a", at(T0 + 1_000))] * 2
