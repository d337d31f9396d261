"""The cross-engine comparison used by the promotion rehearsal."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pipeline.batch.promote import _canonical, same_rows


def canon(rows):
    return [tuple(map(_canonical, r)) for r in rows]


def test_decimal_and_float_spellings_of_one_value_agree():
    left = canon([("a", Decimal("26.06125"), dt.datetime(2017, 10, 2, 10, 56, 33))])
    right = canon([("a", 26.061250000000001, "2017-10-02 10:56:33")])
    assert same_rows(left, right)


def test_order_does_not_matter_but_multiplicity_does():
    assert same_rows(canon([(1, "x"), (2, "y")]), canon([(2, "y"), (1, "x")]))
    assert not same_rows(canon([(1, "x"), (1, "x")]), canon([(1, "x")]))
    assert not same_rows(canon([(1, "x"), (1, "x")]), canon([(1, "x"), (2, "x")]))


def test_a_real_difference_is_caught():
    assert not same_rows(canon([("a", Decimal("10.00"))]), canon([("a", 10.01)]))
    assert not same_rows(canon([("a", None)]), canon([("a", "1970-01-01 00:00:00")]))
