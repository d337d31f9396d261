"""JSON Schemas for the Kafka topics, generated from the contracts; events are validated against them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pipeline.contracts.registry import Column, Dataset, Registry

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def column_schema(col: Column, registry: Registry) -> dict:
    if col.row_of:
        schema = row_schema(registry.dataset(col.row_of), registry)
    elif col.logical_type == "object":
        schema = object_schema(col.children, registry)
    else:
        kind = {"integer": "integer", "number": "number", "boolean": "boolean"}.get(col.logical_type, "string")
        schema = {"type": kind}
        if col.enum:
            schema["enum"] = list(col.enum)
        if col.pattern:
            schema["pattern"] = col.pattern
        length = re.fullmatch(r"(?:varchar|char)\((\d+)\)", col.physical_type.lower())
        if length:
            schema["maxLength"] = int(length.group(1))
        if kind in ("integer", "number"):
            if col.minimum is not None:
                schema["minimum"] = col.minimum
            if col.maximum is not None:
                schema["maximum"] = col.maximum
            if digits := col.decimal_digits:
                bound = 10 ** (digits[0] - digits[1])  # what the type can hold at all
                if col.maximum is None:
                    schema["exclusiveMaximum"] = bound
                if col.minimum is None:
                    schema["exclusiveMinimum"] = -bound
    if col.description:
        schema["description"] = col.description
    if not col.required:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def object_schema(columns: tuple[Column, ...], registry: Registry) -> dict:
    return {
        "type": "object",
        "properties": {c.name: column_schema(c, registry) for c in columns},
        "required": [c.name for c in columns if c.required],
    }


def row_schema(ds: Dataset, registry: Registry) -> dict:
    """One row of a table (the payload of a CDC envelope); extra columns are allowed, missing ones not."""
    return {**object_schema(ds.columns, registry), "title": f"row of {ds.name}"}


def envelope_rules(ds: Dataset) -> list[dict]:
    """A CDC envelope's images by its op: every op but a delete carries the row after it, a delete the row
    before it (the row an event names, as the Flink job and the batch recompute read it)."""
    op = next((c for c in ds.columns if c.name == "op"), None)
    if op is None or not op.enum or not any(c.row_of for c in ds.columns):
        return []
    others = [o for o in op.enum if o != "d"]
    return [{"if": {"properties": {"op": {"enum": others}}, "required": ["op"]},
             "then": {"properties": {"after": {"type": "object"}}, "required": ["after"]}},
            {"if": {"properties": {"op": {"const": "d"}}, "required": ["op"]},
             "then": {"properties": {"before": {"type": "object"}}, "required": ["before"]}}]


def topic_schema(ds: Dataset, registry: Registry) -> dict:
    schema = {
        "$schema": DRAFT,
        "$id": f"urn:olist:contract:{ds.contract_id}:{ds.version}",
        "title": ds.name,
        "description": ds.description,
        **object_schema(ds.columns, registry),
    }
    if rules := envelope_rules(ds):
        schema["allOf"] = rules
    return schema


def render_topics(registry: Registry) -> dict[Path, str]:
    return {
        Path(f"contracts/generated/jsonschema/{ds.name}.schema.json"):
            json.dumps(topic_schema(ds, registry), indent=2, ensure_ascii=False) + "\n"
        for ds in registry.topics()
    }
