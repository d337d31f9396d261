"""The contracts checked by the field's own tool, datacontract-cli: ``lint`` (the ODCS JSON Schema and its own
rules) on every contract, and ``test`` (schema and quality checks) against the tables loaded into PostgreSQL and
against bronze on S3.

The tool runs in a venv of its own (its pins clash with the project's), made once from
``requirements/datacontract.txt``; the project's stricter lint (``olist contracts lint``) runs as well. Contracts
name no server: for ``test`` each is copied with a ``servers`` entry for the running database or the bucket, and
the tool reads the credentials from its own ``DATACONTRACT_POSTGRES_*`` / ``DATACONTRACT_S3_*`` variables, never
from the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from emulation.resources import engine
from pipeline.contracts.registry import CONTRACTS_DIR, contract_files
from pipeline.settings import PROJECT_ROOT, Settings, cache_root

if TYPE_CHECKING:
    import pyarrow as pa

    from pipeline.contracts import Dataset
    from pipeline.storage import S3Location

REQUIREMENTS = PROJECT_ROOT / "requirements" / "datacontract.txt"
RUNNER = Path(__file__).with_name("datacontract_runner.py")
# A relationship to another contract's table: the tool checks one file at a time and says it cannot (the
# project's lint checks every cross-reference, and dbt's relationships tests the data).
ACROSS_CONTRACTS = "the contract has no schema"
# A type check on a Parquet file: the tool casts the file into the contract's types as it reads it, so it says it
# cannot (the ingestion writes bronze, and read_bronze reads it, in the contract's Arrow schema).
PARQUET_TYPES = "Checking types in parquet files is not supported yet"
# Beside the bronze tables, one folder per check_bronze run (``_datacontract-RUN``), deleted after the run.
BRONZE_SCRATCH = "_datacontract"
# The contracts' physical types are PostgreSQL's; the tool's Parquet reader makes them DuckDB types, and these two
# it gets wrong: no type at all for ``double precision`` (a syntax error), and ``timestamp`` read as one with a time
# zone. In the bronze copies they are named as the files hold them.
PARQUET_PHYSICAL_TYPES = {"double precision": "double", "timestamp": "timestamp_ntz"}


@dataclass(frozen=True)
class ToolCheck:
    file: str
    check: str
    field: str
    result: str  # passed | warning | failed | error
    reason: str

    @property
    def across_contracts(self) -> bool:
        return self.result == "warning" and ACROSS_CONTRACTS in self.reason

    @property
    def parquet_types(self) -> bool:
        return self.result == "warning" and PARQUET_TYPES in self.reason


@dataclass
class ToolReport:
    mode: str
    files: int
    checks: list[ToolCheck]

    @property
    def problems(self) -> list[ToolCheck]:
        """Checks that did not pass, but for those the tool cannot run: relationships across files, Parquet types."""
        return [c for c in self.checks if c.result != "passed" and not c.across_contracts and not c.parquet_types]

    @property
    def passed(self) -> int:
        return sum(c.result == "passed" for c in self.checks)


def tool_python() -> Path:
    from emulation.venvs import ensure_venv

    return ensure_venv("datacontract", REQUIREMENTS, base=cache_root(),
                       check="import datacontract.data_contract, duckdb_extension_httpfs")


def _run(mode: str, files: list[Path], env: dict[str, str] | None = None, timeout: float = 900) -> ToolReport:
    proc = subprocess.run([str(tool_python()), str(RUNNER), mode, *map(str, files)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"datacontract {mode} exited {proc.returncode}:\n{tail}")
    checks = [ToolCheck(**json.loads(line)) for line in proc.stdout.splitlines() if line.startswith("{")]
    return ToolReport(mode, len(files), checks)


def _bind(path: Path, server: dict, tmp: str, physical_types: dict[str, str] | None = None) -> Path:
    """A copy of the contract at ``path`` in ``tmp``, with ``server`` as its one server (and its properties'
    physical types renamed by ``physical_types``)."""
    contract = yaml.safe_load(path.read_text(encoding="utf-8"))
    for schema in contract["schema"] if physical_types else []:
        for prop in schema.get("properties", []):
            prop["physicalType"] = physical_types.get(prop.get("physicalType"), prop.get("physicalType"))
    copy = Path(tmp) / path.name
    copy.write_text(yaml.safe_dump({**contract, "servers": [server]}, sort_keys=False), encoding="utf-8")
    return copy


def lint(root: Path = CONTRACTS_DIR) -> ToolReport:
    """``datacontract lint`` on every contract."""
    return _run("lint", contract_files(root))


def check_postgres(settings: Settings, schema: str | None = None, root: Path = CONTRACTS_DIR) -> ToolReport:
    """``datacontract test`` of every source-table contract against the running PostgreSQL (``schema``: the
    settings' by default), as the pipeline's role."""

    pg = engine("postgres", settings)
    ep = pg.endpoint()
    if ep is None or not pg.available():
        raise RuntimeError("postgres is not running: start it with `olist up postgres`")
    server = {"server": "local", "type": "postgres", "host": ep.host, "port": ep.port,
              "database": ep.extra["dbname"], "schema": schema or settings.pg_schema}
    with tempfile.TemporaryDirectory(prefix="olist-datacontract-") as tmp:
        # the source tables only: not the topics, the archive or the ops tables
        bound = [_bind(path, server, tmp) for path in contract_files(root) if path.parent.name == "olist"]
        credentials = {"DATACONTRACT_POSTGRES_USERNAME": ep.extra["user"],
                       "DATACONTRACT_POSTGRES_PASSWORD": ep.extra["password"]}
        return _run("test", bound, credentials)


def current_state(versions: pa.Table, ds: Dataset) -> pa.Table:
    """The rows silver reads from a table's bronze versions, in the contract's fields only.

    A table copied incrementally keeps the newest version per key (by change time; on a tie the row that is there
    wins) unless it is the key's delete: the staging models' ``latest_version`` (and ``live_keys``). A snapshot
    table's committed files are its newest snapshot, taken as they are (its staging model does the same). The bronze
    bookkeeping columns (change time, delete flag) are dropped: no contract has them, and silver drops them too."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from pipeline.batch.ingest import CHANGE_COLUMN, DELETED_COLUMN

    if ds.primary_key and ds.change_detection != "full":
        deleted = pc.fill_null(versions.column(DELETED_COLUMN), False)
        ordered = versions.set_column(versions.schema.get_field_index(DELETED_COLUMN), DELETED_COLUMN, deleted).sort_by(
            [(CHANGE_COLUMN, "descending"), (DELETED_COLUMN, "ascending")])
        ordered = ordered.append_column("_row", pa.array(range(ordered.num_rows), pa.int64()))
        newest = ordered.take(ordered.group_by(ds.primary_key, use_threads=False).aggregate([("_row", "min")])
                              .column("_row_min"))
        versions = newest.filter(pc.invert(newest.column(DELETED_COLUMN)))
    return versions.select(ds.column_names)


def check_bronze(settings: Settings, loc: S3Location | None = None) -> ToolReport:
    """``datacontract test`` of every source-table contract against its bronze on S3, read by the tool itself.

    The tool reads one location per table, and a table's bronze prefix is not its data: it holds every committed
    version of a row, deletes included (no key is unique there), older snapshots and any file a killed run left
    uncommitted. So each table's :func:`current_state`, from exactly the files its manifests commit, is written as
    one Parquet file under ``BRONZE/_datacontract-RUN/`` in the same bucket, deleted after the run, and the tool
    reads it through a ``servers`` entry of type s3 (DuckDB's httpfs, from the venv's extension wheels: no download).
    Checked: every rule of the contract on the rows silver reads, and the tool's S3 read path. Not checked: versions a
    newer one superseded, and the Parquet types (``PARQUET_TYPES``)."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from pipeline.batch.ingest.read import read_bronze
    from pipeline.contracts import load_registry
    from pipeline.storage import s3_location

    loc = loc or s3_location(settings)
    fs = loc.arrow_fs()
    scratch = loc.path(f"{settings.bronze_prefix}/{BRONZE_SCRATCH}-{uuid.uuid4().hex[:12]}")
    credentials = {"DATACONTRACT_S3_REGION": loc.region}
    if loc.access_key_id and loc.secret_access_key:
        credentials |= {"DATACONTRACT_S3_ACCESS_KEY_ID": loc.access_key_id,
                        "DATACONTRACT_S3_SECRET_ACCESS_KEY": loc.secret_access_key}
    try:
        with tempfile.TemporaryDirectory(prefix="olist-datacontract-") as tmp:
            bound = []
            for ds in load_registry().source_tables():
                path = f"{scratch}/{ds.name}.parquet"
                pq.write_table(current_state(read_bronze(loc, settings.bronze_prefix, ds.name), ds), path,
                               filesystem=fs)
                server = {"server": "bronze", "type": "s3", "location": f"s3://{path}", "format": "parquet",
                          **({"endpointUrl": loc.endpoint_url} if loc.endpoint_url else {})}
                bound.append(_bind(ds.path, server, tmp, PARQUET_PHYSICAL_TYPES))
            return _run("test", bound, credentials)
    finally:
        if fs.get_file_info(scratch).type != pafs.FileType.NotFound:
            fs.delete_dir(scratch)
