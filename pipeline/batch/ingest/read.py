"""Read bronze the one way readers may: only the files the manifests commit."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.batch.ingest import BRONZE_FIELDS
from pipeline.batch.ingest.manifest import committed_files, manifests
from pipeline.contracts import load_registry
from pipeline.contracts.render_arrow import arrow_schema
from pipeline.storage import S3Location


def read_bronze(loc: S3Location, bronze: str, table: str) -> pa.Table:
    """Every committed version of a table's rows, deletes included (an empty table before the first run)."""
    schema = arrow_schema(load_registry().dataset(table), BRONZE_FIELDS)
    fs = loc.arrow_fs()
    files = committed_files(manifests(loc, fs, bronze, table))
    if not files:
        return schema.empty_table()
    return pq.ParquetDataset([f.path for f in files], filesystem=fs, schema=schema).read()
