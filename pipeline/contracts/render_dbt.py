"""dbt artifacts generated from the contracts: the bronze sources, each staging model's yml (keys,
relationships, enums and ranges as tests) and the enum values as a macro."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from pipeline.contracts.registry import Column, Dataset, Registry
from pipeline.contracts.row_rules import dbt_rules

HEADER = "# Generated from contracts/ by `olist contracts generate`. Do not edit by hand.\n"
STAGING = Path("dbt/models/staging")


def stg_name(ds: Dataset) -> str:
    return f"stg_olist__{ds.name}"


def _range_test(col: Column) -> dict | None:
    if col.minimum is None and col.maximum is None:
        return None
    args = {k: v for k, v in (("min_value", col.minimum), ("max_value", col.maximum)) if v is not None}
    return {"olist_accepted_range": {"arguments": args}}


def _column_tests(col: Column, ds: Dataset, registry: Registry, staged: bool) -> list:
    tests: list = []
    if col.required:
        tests.append("not_null")
    if staged and ds.primary_key == [col.name]:
        tests.append("unique")
    if col.enum:
        tests.append({"accepted_values": {"arguments": {"values": list(col.enum)}}})
    if rng := _range_test(col):
        tests.append(rng)
    if staged:
        for table, column in col.references:
            parent = registry.dataset(table)
            tests.append({"relationships": {"arguments": {"to": f"ref('{stg_name(parent)}')", "field": column}}})
    return tests


def _columns(ds: Dataset, registry: Registry, staged: bool) -> list[dict]:
    out = []
    for col in ds.columns:
        entry: dict = {"name": col.name, "description": col.description}
        tests = _column_tests(col, ds, registry, staged)
        if tests:
            entry["data_tests"] = tests
        out.append(entry)
    return out


def _archive_table(registry: Registry) -> dict:
    ds = registry.archive_of(registry.topic("raw").physical_name)
    return {
        "name": ds.name,
        "description": f"{ds.description} The archive of {ds.custom_property('archiveOf')} on S3: every offset "
                       "once, from the files its manifests commit (`olist transform` refreshes it before each build).",
        "meta": {"contract": ds.contract_id, "archive_of": ds.custom_property("archiveOf")},
        "data_tests": [{"olist_unique_combination": {"arguments": {"columns": ds.primary_key}}}],
        "columns": _columns(ds, registry, staged=False),
    }


def render_sources(registry: Registry) -> str:
    tables = []
    for ds in registry.source_tables():
        tables.append({
            "name": ds.name,
            "description": f"{ds.description} Bronze: every ingested version, from the S3 files the "
                           "ingestion manifests commit (`olist transform` refreshes it before each build).",
            "meta": {"contract": ds.contract_id, "change_detection": ds.change_detection},
            "columns": _columns(ds, registry, staged=False),
        })
    tables.append(_archive_table(registry))
    doc = {"version": 2, "sources": [{
        "name": "bronze", "schema": "bronze",
        "description": "Olist source tables as ingested to S3 Parquet, and the raw topic's archive.",
        "tables": tables,
    }]}
    return HEADER + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)


def render_staging_yml(ds: Dataset, registry: Registry) -> str:
    model: dict = {
        "name": stg_name(ds),
        "description": f"Silver: {ds.description} Latest version of each row, typed and cleaned.",
        "columns": _columns(ds, registry, staged=True),
    }
    if len(ds.primary_key) > 1:
        model["data_tests"] = [{"olist_unique_combination": {"arguments": {"columns": ds.primary_key}}}]
    return HEADER + yaml.safe_dump({"version": 2, "models": [model]}, sort_keys=False, allow_unicode=True,
                                   width=120)


def render_batch_view_yml(topic: Dataset, registry: Registry) -> str:
    """The yml of the dbt mart recomputing a windowed topic from the raw archive: the topic's columns, key and
    rules, so the batch and speed views cannot drift apart."""
    model = {
        "name": topic.custom_property("batchView"),
        "description": f"Gold, batch layer: {topic.description} Recomputed from the raw archive with the speed "
                       f"layer's semantics (contract {topic.contract_id} {topic.version}); `olist reconcile` holds "
                       "Cassandra's windows to it.",
        "data_tests": [{"olist_unique_combination": {"arguments": {"columns": topic.primary_key}}}],
        "columns": _columns(topic, registry, staged=False),
    }
    return HEADER + yaml.safe_dump({"version": 2, "models": [model]}, sort_keys=False, allow_unicode=True,
                                   width=120)


def render_enum_macro(registry: Registry) -> str:
    enums = {f"{ds.name}.{c.name}": list(c.enum) for ds in registry.source_tables() for c in ds.columns if c.enum}
    return (
        "{# Generated from contracts/ by `olist contracts generate`. Do not edit by hand. #}\n"
        "{% macro contract_enum(table, column) %}\n"
        f"  {{% set enums = {json.dumps(enums, sort_keys=True)} %}}\n"
        "  {{ return(enums[table ~ '.' ~ column]) }}\n"
        "{% endmacro %}\n"
    )


def render_row_rules_macro(registry: Registry) -> str:
    """The rules a CDC event's row must meet to count (pipeline/contracts/row_rules.py), per row table: the
    batch recompute applies them (macro ``row_rules_hold``) as the Flink job does."""
    def jinja(rule: dict) -> dict:  # Jinja has no null: leave out an empty value
        return {k: v for k, v in rule.items() if v is not None}

    tables = {name: {"ops": t["ops"], "rules": [jinja(r) for r in t["rules"]]}
              for name, t in dbt_rules(registry).items()}
    return (
        "{# Generated from contracts/ by `olist contracts generate`. Do not edit by hand. #}\n"
        "{% macro contract_row_rules(table) %}\n"
        f"  {{% set tables = {json.dumps(tables, sort_keys=True)} %}}\n"
        "  {{ return(tables[table]) }}\n"
        "{% endmacro %}\n"
    )


def render_dbt(registry: Registry) -> dict[Path, str]:
    out = {STAGING / "__sources.yml": render_sources(registry),
           Path("dbt/macros/contract_enum.sql"): render_enum_macro(registry),
           Path("dbt/macros/contract_row_rules.sql"): render_row_rules_macro(registry)}
    for ds in registry.source_tables():
        out[STAGING / f"{stg_name(ds)}.yml"] = render_staging_yml(ds, registry)
    for topic in registry.topics():
        if view := topic.custom_property("batchView"):
            out[Path("dbt/models/marts") / f"{view}.yml"] = render_batch_view_yml(topic, registry)
    return out
