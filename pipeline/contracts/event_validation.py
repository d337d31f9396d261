"""Validate Kafka events against the JSON Schemas generated from the topic contracts."""

from __future__ import annotations

import functools
from typing import Any

import jsonschema

from pipeline.contracts import load_registry
from pipeline.contracts.render_jsonschema import topic_schema


@functools.cache
def validator(topic: str) -> jsonschema.protocols.Validator:
    registry = load_registry()
    schema = topic_schema(registry.dataset(topic), registry)
    return jsonschema.Draft202012Validator(schema)


def event_errors(topic: str, event: Any) -> list[str]:
    """One line per violation, naming the field (``after.payment_type: 'pix' is not one of [...]``)."""
    errors = sorted(validator(topic).iter_errors(event), key=lambda e: list(map(str, e.absolute_path)))
    out = []
    for err in errors:
        where = ".".join(str(p) for p in err.absolute_path) or "(event)"
        # anyOf [row, null] reports the inner reason in its context: surface the most specific one.
        best = min(err.context, key=lambda e: len(e.message)) if err.context else err
        inner = ".".join(str(p) for p in best.absolute_path) or where
        out.append(f"{inner}: {best.message}")
    return out
