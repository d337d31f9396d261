"""Read bronze the one way readers may: only the files the manifests commit (the ingestion's for the source
tables, the archive's for the raw topic)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.batch.ingest import BRONZE_FIELDS
from pipeline.batch.ingest.manifest import committed_files, manifests
from pipeline.contracts import load_registry, stream_names
from pipeline.contracts.render_arrow import arrow_schema
from pipeline.lake import ArchiveLayout
from pipeline.settings import Settings
from pipeline.storage import S3Location


def read_bronze(loc: S3Location, bronze: str, table: str) -> pa.Table:
    """Every committed version of a table's rows, deletes included (an empty table before the first run)."""
    schema = arrow_schema(load_registry().dataset(table), BRONZE_FIELDS)
    fs = loc.arrow_fs()
    files = committed_files(manifests(loc, fs, bronze, table))
    if not files:
        return schema.empty_table()
    return pq.ParquetDataset([f.path for f in files], filesystem=fs, schema=schema).read()


def bronze_readers(settings: Settings, loc: S3Location) -> dict[str, Callable[[], pa.Table]]:
    """Every bronze table by name, each read from exactly its committed S3 files: the source tables (through the
    ingestion manifests) and the raw topic's archive (through the archive's manifests)."""
    names = stream_names()
    readers: dict[str, Callable[[], pa.Table]] = {
        ds.name: functools.partial(read_bronze, loc, settings.bronze_prefix, ds.name)
        for ds in load_registry().source_tables()}
    readers[names.archive] = ArchiveLayout(loc, settings.raw_prefix, names.raw).read
    return readers


def committed_keys(settings: Settings, loc: S3Location) -> dict[str, list[str]]:
    """The bucket-relative keys of every bronze table's committed files (what a warehouse's COPY may load)."""
    names = stream_names()
    fs = loc.arrow_fs()
    bucket = loc.path("")
    keys = {ds.name: [f.path.removeprefix(bucket) for f in committed_files(
        manifests(loc, fs, settings.bronze_prefix, ds.name))] for ds in load_registry().source_tables()}
    keys[names.archive] = [m.key for m in ArchiveLayout(loc, settings.raw_prefix, names.raw, fs).manifests()]
    return keys
