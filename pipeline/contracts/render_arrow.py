"""Arrow schemas from the contracts: decimals stay decimals, timestamps stay timestamps, zips stay text."""

from __future__ import annotations

import pyarrow as pa

from pipeline.contracts.registry import Column, Dataset

INT_TYPES = {"smallint": pa.int16(), "integer": pa.int32(), "int": pa.int32(), "bigint": pa.int64()}


def arrow_type(col: Column) -> pa.DataType:
    physical = col.physical_type.lower().strip()
    if digits := col.decimal_digits:
        return pa.decimal128(*digits)
    if col.logical_type == "integer":
        return INT_TYPES.get(physical, pa.int64())
    if col.logical_type == "number":
        return pa.float64()
    if col.logical_type == "timestamp":
        return pa.timestamp("us", tz="UTC") if physical == "timestamptz" else pa.timestamp("us")
    if col.logical_type == "date":
        return pa.date32()
    if col.logical_type == "boolean":
        return pa.bool_()
    return pa.string()


def arrow_schema(ds: Dataset, extra: list[pa.Field] | None = None) -> pa.Schema:
    fields = [pa.field(c.name, arrow_type(c), nullable=not c.required) for c in ds.columns]
    return pa.schema([*fields, *(extra or [])], metadata={"contract": ds.contract_id, "version": ds.version})
