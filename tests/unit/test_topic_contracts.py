"""Topic contracts: their generated JSON Schemas accept Debezium's and Flink's events and name what is wrong."""

from __future__ import annotations

import copy

import pytest

from pipeline.contracts.event_validation import event_errors

ROW = {"order_id": "e481f51cbdc54678b7cc49136f2d6af7", "payment_sequential": 1, "payment_type": "credit_card",
       "payment_installments": 3, "payment_value": 120.5}
SOURCE = {"version": "3.6.1.Final", "connector": "postgresql", "name": "olistcdc", "ts_ms": 1764266400000,
          "snapshot": "false", "db": "olist", "schema": "olist", "table": "order_payments", "txId": 781,
          "lsn": 26921512}
INSERT = {"before": None, "after": ROW, "op": "c", "ts_ms": 1764266400123, "source": SOURCE}
UPDATE = {"before": ROW, "after": {**ROW, "payment_value": 99.9}, "op": "u", "ts_ms": 1764266401000, "source": SOURCE}
DELETE = {"before": ROW, "after": None, "op": "d", "ts_ms": 1764266402000, "source": SOURCE}


@pytest.mark.parametrize("event", [INSERT, UPDATE, DELETE], ids=["insert", "update", "delete"])
def test_debezium_envelopes_are_valid(event):
    assert event_errors("olist.order_payments", event) == []


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("after", "payment_type"), "pix", "after.payment_type: 'pix' is not one of"),
    (("after", "payment_value"), -1, "after.payment_value: -1 is less than the minimum of 0"),
    (("after", "payment_installments"), 30, "after.payment_installments: 30 is greater than the maximum of 24"),
    (("op",), "x", "op: 'x' is not one of"),
    (("source", "ts_ms"), "yesterday", "source.ts_ms: 'yesterday' is not of type 'integer'"),
])
def test_a_bad_event_names_the_field(path, value, expected):
    event = copy.deepcopy(INSERT)
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errors = event_errors("olist.order_payments", event)
    assert any(e.startswith(expected) for e in errors), errors


def test_a_missing_field_is_reported():
    event = copy.deepcopy(INSERT)
    del event["after"]["order_id"]
    assert any("'order_id' is a required property" in e for e in event_errors("olist.order_payments", event))


def test_windowed_records():
    good = {"window_start": "2026-11-27 18:00:00.000", "window_end": "2026-11-27 18:00:10.000",
            "payment_type": "boleto", "payment_count": 3, "payment_sum": 30.5, "payment_avg": 10.17,
            "payment_min": 5.0, "payment_max": 15.5}
    assert event_errors("olist_payments_aggregated_windowed", good) == []
    assert event_errors("olist_payments_aggregated_windowed", {**good, "payment_count": 0})
    inst = {"window_start": "2026-11-27 18:00:00.000", "window_end": "2026-11-27 18:00:10.000",
            "payment_type": "credit_card", "payment_installments": 10, "installment_count": 2}
    assert event_errors("olist_payments_installments_windowed", inst) == []
    assert event_errors("olist_payments_installments_windowed", {**inst, "payment_installments": 25})


def test_topics_and_captured_tables_come_from_the_contracts():
    from pipeline.speed.cdc import captured_tables, topic_specs

    specs = {t.name: t for t in topic_specs()}
    assert set(specs) == {"olist.order_payments", "olist.order_payments.dlq", "olist_payments_aggregated_windowed",
                          "olist_payments_aggregated_windowed.dlq", "olist_payments_installments_windowed",
                          "olist_payments_installments_windowed.dlq", "olist_payments_late_events",
                          "olist_payments_late_events.dlq"}
    assert specs["olist_payments_aggregated_windowed"].config["cleanup.policy"] == "compact"
    assert specs["olist.order_payments"].config["retention.ms"] == "604800000"
    assert captured_tables() == ["order_payments"]
