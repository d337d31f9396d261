"""The rules a CDC event's row must meet to count, from its table's contract: every engine that reads the raw
topic (the Flink job, the dbt batch recompute) applies the same ones, generated from here, so the speed and batch
views refuse the same events (and the raw archive dead-letters them, by the JSON Schema of the same contract).

An event counts when its ``op`` is one of the contract's, it has a commit time, its key columns meet their rules
in the row it names (``after``, or ``before`` for a delete) and, unless it is a delete, every column of ``after``
meets its rules: present when required, in the enum, within minimum/maximum, matching the pattern, and integral
for an integer column (2.7 is refused, not truncated to 2 by one engine and rounded to 3 by another).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.contracts.registry import Column, ContractError, Dataset, Registry

INTEGER_TYPES = ("smallint", "int", "integer", "int32", "bigint", "int64")


@dataclass(frozen=True)
class Rule:
    """One condition on one column of a row: ``kind`` is required, enum, minimum, maximum, pattern or integer."""

    column: str
    kind: str
    value: Any = None
    key: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"column": self.column, "kind": self.kind, "value": self.value, "key": self.key}


def is_integer(col: Column) -> bool:
    return col.physical_type.lower().strip() in INTEGER_TYPES


def _number(value: float | str) -> float | int:
    number = float(value)
    return int(number) if number.is_integer() else number


def row_rules(row: Dataset) -> list[Rule]:
    """The rules of a table's row, in column order (key columns flagged)."""
    rules = []
    for col in row.columns:
        key = col.is_key
        if col.required or key:
            rules.append(Rule(col.name, "required", key=key))
        if col.enum:
            rules.append(Rule(col.name, "enum", list(col.enum), key))
        if col.minimum is not None:
            rules.append(Rule(col.name, "minimum", _number(col.minimum), key))
        if col.maximum is not None:
            rules.append(Rule(col.name, "maximum", _number(col.maximum), key))
        if col.pattern:
            rules.append(Rule(col.name, "pattern", col.pattern, key))
        if is_integer(col):
            rules.append(Rule(col.name, "integer", key=key))
    return rules


def envelope(topic: Dataset, registry: Registry) -> tuple[Dataset, list[str], str]:
    """A CDC topic's row table, its ops and the dotted path of its commit time."""
    row_of = next((c.row_of for c in topic.columns if c.row_of), None)
    op = next((c for c in topic.columns if c.name == "op"), None)
    event_time = topic.custom_property("eventTime")
    if row_of is None or op is None or not op.enum or not event_time:
        raise ContractError(f"{topic.name}: a CDC topic needs before/after rows, an op enum and an eventTime")
    return registry.dataset(row_of), [str(o) for o in op.enum], str(event_time)


def _sql_literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'" if isinstance(value, str) else repr(value)


def flink_condition(rule: Rule, expr: str) -> str:
    """A rule as Flink SQL over ``expr`` (a field of a ROW read with integers as DOUBLE)."""
    if rule.kind == "required":
        return f"{expr} IS NOT NULL"
    if rule.kind == "enum":
        return f"{expr} IN ({', '.join(map(_sql_literal, rule.value))})"
    if rule.kind == "minimum":
        return f"{expr} >= {rule.value}"
    if rule.kind == "maximum":
        return f"{expr} <= {rule.value}"
    if rule.kind == "pattern":
        if not (rule.value.startswith("^") and rule.value.endswith("$")):
            raise ContractError(f"{rule.column}: pattern {rule.value!r} must be anchored (^...$) to mean one thing "
                                "in every engine")
        return f"REGEXP({expr}, {_sql_literal(rule.value)})"
    if rule.kind == "integer":
        return f"{expr} = FLOOR({expr})"
    raise ContractError(f"{rule.column}: no Flink SQL for a {rule.kind} rule")


def flink_valid_event(topic: Dataset, registry: Registry) -> str:
    """The Flink SQL condition under which an event of the CDC ``topic`` counts (over its events table)."""
    row, ops, event_time = envelope(topic, registry)
    rules = row_rules(row)
    path = ".".join(f"`{p}`" for p in event_time.split("."))
    named = "COALESCE(`after`, `before`)"
    keys = [flink_condition(r, f"{named}.`{r.column}`") for r in rules if r.key]
    after = [flink_condition(r, f"`after`.`{r.column}`") for r in rules]
    return (f"`op` IN ({', '.join(map(_sql_literal, ops))}) AND {path} IS NOT NULL AND "
            + " AND ".join(keys) + " AND (`op` = 'd' OR (" + " AND ".join(after) + "))")


def dbt_rules(registry: Registry) -> dict[str, Any]:
    """Per CDC topic's row table: its ops and rules, for the generated dbt macro."""
    out = {}
    for topic in registry.topics():
        if any(c.row_of for c in topic.columns):
            row, ops, _ = envelope(topic, registry)
            out[row.name] = {"ops": ops, "rules": [r.as_dict() for r in row_rules(row)]}
    return out

