"""Run manifests: the commit record of an ingestion run. Readers take only files a manifest lists.

A run writes its Parquet files first and its manifest last (one PUT, atomic), so a run killed midway
leaves files no manifest names: invisible to readers, removed by the next run, which copies that range
again. The newest manifest of a table holds its watermark.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import pyarrow.fs as pafs

from pipeline.storage import S3Location
from pipeline.totals import Total


@dataclass
class DataFile:
    path: str  # bucket-relative key
    rows: int
    bytes: int
    sha256: str


@dataclass
class Manifest:
    run_id: str
    table: str
    mode: str  # initial | incremental | snapshot
    created_at: str
    contract_version: str
    watermark_from: str | None
    watermark_to: str | None
    source_rows: int  # rows in PostgreSQL when the run read them
    checksum: str | None = None  # content checksum of snapshot tables
    files: list[DataFile] = field(default_factory=list)

    rows = Total("files", "rows")
    bytes = Total("files", "bytes")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        raw["files"] = [DataFile(**f) for f in raw["files"]]
        return cls(**raw)


def table_prefix(loc: S3Location, bronze: str, table: str) -> str:
    return loc.path(f"{bronze}/{table}")


def manifests(loc: S3Location, fs: pafs.FileSystem, bronze: str, table: str) -> list[Manifest]:
    """Committed manifests of a table, oldest first."""
    base = f"{table_prefix(loc, bronze, table)}/_manifests"
    infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    out = []
    for info in sorted((i for i in infos if i.path.endswith(".json")), key=lambda i: i.path):
        with fs.open_input_stream(info.path) as fh:
            out.append(Manifest.from_json(fh.read().decode()))
    return out


def write_manifest(loc: S3Location, fs: pafs.FileSystem, bronze: str, manifest: Manifest) -> str:
    key = f"{table_prefix(loc, bronze, manifest.table)}/_manifests/{manifest.created_at}-{manifest.run_id}.json"
    with fs.open_output_stream(key) as fh:
        fh.write(manifest.to_json().encode())
    return key


def committed_files(history: list[Manifest]) -> list[DataFile]:
    """The files readers see: for snapshot tables the newest snapshot's, else every run's."""
    if history and history[-1].mode == "snapshot":
        return list(history[-1].files)
    return [f for m in history for f in m.files]


def orphans(loc: S3Location, fs: pafs.FileSystem, bronze: str, table: str, history: list[Manifest]) -> list[str]:
    """Data files under the table that no manifest lists (left by a run that did not commit)."""
    listed = {f.path for m in history for f in m.files}
    base = table_prefix(loc, bronze, table)
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return [i.path for i in infos
            if i.type == pafs.FileType.File and i.path.endswith(".parquet") and i.path not in listed]
