"""Snowflake DDL for the bronze tables, generated from the contracts."""

from __future__ import annotations

import re

from pipeline.contracts.registry import Column, Dataset, Registry
from pipeline.contracts.render_postgres import CHANGE_COLUMN, DELETED_COLUMN

HEADER = "-- Generated from contracts/ by `olist contracts generate`. Do not edit by hand.\n"
INT_DIGITS = {"smallint": 5, "integer": 10, "int": 10, "bigint": 19}


def snowflake_type(col: Column) -> str:
    physical = col.physical_type.lower().strip()
    if digits := col.decimal_digits:
        return f"number({digits[0]},{digits[1]})"
    if col.logical_type == "integer":
        return f"number({INT_DIGITS.get(physical, 19)},0)"
    if col.logical_type == "number":
        return "float"
    if col.logical_type == "timestamp":
        return "timestamp_tz" if physical == "timestamptz" else "timestamp_ntz"
    if col.logical_type == "date":
        return "date"
    length = re.fullmatch(r"(?:varchar|char)\((\d+)\)", physical)
    return f"varchar({length.group(1)})" if length else "varchar"


def bronze_table_ddl(ds: Dataset, schema: str = "bronze") -> str:
    """A bronze table: a source table's columns with the version columns, or an archive's columns as they are."""
    cols = [f"    {c.name} {snowflake_type(c)}{' not null' if c.required else ''}" for c in ds.columns]
    if ds.source_file:
        cols.append(f"    {CHANGE_COLUMN} timestamp_tz not null")
        cols.append(f"    {DELETED_COLUMN} boolean")
    return f"create or replace table {schema}.{ds.name} (\n" + ",\n".join(cols) + "\n);\n"


def render_bronze(registry: Registry, schema: str = "bronze") -> str:
    bronze = [*registry.source_tables(), registry.archive_of(registry.topic("raw").physical_name)]
    tables = "\n".join(bronze_table_ddl(ds, schema) for ds in bronze)
    return HEADER + f"create schema if not exists {schema};\n\n" + tables
