"""The Snowflake target: bronze loaded from the manifested S3 files, the same dbt models, marts compared.

On real Snowflake bronze arrives by ``COPY INTO`` from an external stage over the bucket (read through a
storage integration: no key is ever written into SQL), listing exactly the manifested files. Offline, fakesnow
cannot reach S3, so the rehearsal PUTs the same manifested files into an internal stage and runs the same
``COPY INTO`` from there (a real account without a storage integration can do the same). Everything after
bronze is identical: the same dbt models, selected by ``--target``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from emulation.service import ServiceError
from pipeline.batch.ingest.read import committed_keys
from pipeline.batch.lane import TransformReport
from pipeline.contracts import load_registry
from pipeline.contracts.render_snowflake import bronze_table_ddl
from pipeline.progress import SILENT, Progress
from pipeline.settings import Settings, SnowflakeSettings
from pipeline.storage import s3_location


def snowflake_target(settings: Settings) -> SnowflakeSettings:
    """The account in ``settings.snowflake`` (``SNOWFLAKE_*``), or fakesnow, started if need be, when no account
    is set (bronze then goes in through an internal stage: fakesnow cannot reach S3)."""
    if settings.snowflake.account:
        return settings.snowflake
    from emulation.snowflake import FakesnowService

    service = FakesnowService(settings)
    service.start()
    return SnowflakeSettings(**service.login(), bronze_load="stage")


def connect(sf: SnowflakeSettings):
    import snowflake.connector

    params = {k: v for k, v in sf.model_dump().items() if v and k not in ("bronze_load",)}
    if not params.get("account"):
        raise ValueError("no Snowflake account: set SNOWFLAKE_ACCOUNT (or let the rehearsal start fakesnow)")
    return snowflake.connector.connect(**params, login_timeout=20, network_timeout=120)


def stage_sql(bucket: str, sf: SnowflakeSettings) -> str:
    """The external stage over the bucket, reading it through the account's storage integration (a key in the
    statement would stay in the account's query history)."""
    if not sf.storage_integration:
        raise ServiceError("snowflake: COPY INTO needs SNOWFLAKE_STORAGE_INTEGRATION, a storage integration allowed on "
                           f"s3://{bucket}/ (keys are never written into SQL); or set SNOWFLAKE_BRONZE_LOAD=stage")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", sf.storage_integration):
        raise ServiceError(f"snowflake: storage integration {sf.storage_integration!r} is not a plain identifier")
    return (f"create or replace stage bronze.olist_lake url = 's3://{bucket}/' "
            f"storage_integration = {sf.storage_integration} file_format = (type = parquet)")


def refresh_bronze(settings: Settings, sf: SnowflakeSettings) -> dict[str, int]:
    """(Re)create each bronze table and fill it by ``COPY INTO`` with exactly the committed files' rows: from the
    external stage over the bucket (``copy_into``), or from an internal stage they are PUT to (``stage``)."""
    loc = s3_location(settings)
    registry = load_registry()
    keys = committed_keys(settings, loc)
    counts: dict[str, int] = {}
    with connect(sf) as conn:
        cur = conn.cursor()
        cur.execute(f"create database if not exists {sf.database}")
        cur.execute(f"use database {sf.database}")
        cur.execute("create schema if not exists bronze")
        if sf.bronze_load == "copy_into":
            cur.execute(stage_sql(loc.bucket, sf))
        else:
            cur.execute("create or replace stage bronze.olist_lake file_format = (type = parquet)")
        for name, listed in keys.items():
            cur.execute(bronze_table_ddl(registry.dataset(name)))
            if listed and sf.bronze_load == "copy_into":
                files = ", ".join(f"'{key}'" for key in listed)
                cur.execute(f"copy into bronze.{name} from @bronze.olist_lake files = ({files}) "
                            "match_by_column_name = case_insensitive")
            elif listed:  # the table's folder of the stage holds exactly its committed files
                put_files(cur, loc, name, listed)
                cur.execute(f"copy into bronze.{name} from @bronze.olist_lake/{name}/ "
                            "file_format = (type = parquet) match_by_column_name = case_insensitive")
            counts[name] = cur.execute(f"select count(*) from bronze.{name}").fetchone()[0]
    return counts


def put_files(cur, loc, table: str, keys: list[str]) -> None:
    """Upload the bucket's ``keys`` to the internal stage ``bronze.olist_lake`` under ``table/`` and their own
    paths (PUT reads local files: each is copied out of S3 to a temporary folder first)."""
    fs = loc.arrow_fs()
    with tempfile.TemporaryDirectory(prefix="olist-stage-") as tmp:
        for key in keys:
            local = Path(tmp) / key
            local.parent.mkdir(parents=True, exist_ok=True)
            with fs.open_input_stream(loc.path(key)) as src, local.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            folder = f"{table}/{key.rpartition('/')[0]}"
            cur.execute(f"put 'file://{local}' @bronze.olist_lake/{folder} auto_compress = false overwrite = true")


_TIMESTAMP_TEXT = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?$")


def _canonical(value):
    """One spelling per value across engines: numbers as floats, timestamps as ``YYYY-MM-DD HH:MM:SS.mmm`` (from
    datetimes or from the text a warehouse gave back)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, str) and _TIMESTAMP_TEXT.match(value):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _sort_key(row: tuple) -> str:
    return repr(tuple(round(v, 2) if isinstance(v, float) else v for v in row))


def same_rows(left: list[tuple], right: list[tuple]) -> bool:
    """Equal row multisets; numbers agree to 1e-6 (float and decimal averages differ in the last digits)."""
    if len(left) != len(right):
        return False
    for a, b in zip(sorted(left, key=_sort_key), sorted(right, key=_sort_key), strict=True):
        for x, y in zip(a, b, strict=True):
            if isinstance(x, float | int) and isinstance(y, float | int) and not isinstance(x, bool):
                if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-6):
                    return False
            elif x != y:
                return False
    return True


# fakesnow hands back NULL timestamps as 1970-01-01; text keeps them NULL on every engine.
AS_TEXT = {"TIMESTAMP": "YYYY-MM-DD HH24:MI:SS.FF3", "TIMESTAMP WITH TIME ZONE": "YYYY-MM-DD HH24:MI:SS.FF3",
           "DATE": "YYYY-MM-DD"}


def compare_marts(duckdb_path, sf: SnowflakeSettings, schema: str = "gold") -> dict[str, tuple[int, int, bool]]:
    """Every gold table on both targets: (rows in DuckDB, rows in Snowflake, identical?)."""
    import duckdb

    out = {}
    with duckdb.connect(str(duckdb_path)) as local, connect(sf) as conn:
        cur = conn.cursor()
        cur.execute(f"use database {sf.database}")
        tables = [r[0] for r in local.execute(
            "select table_name from information_schema.tables where table_schema = ? order by 1", [schema]).fetchall()]
        for table in tables:
            left_cur = local.execute(f"select * from {schema}.{table}")
            cols = [(d[0].lower(), str(d[1])) for d in left_cur.description]
            left = [tuple(map(_canonical, r)) for r in left_cur.fetchall()]
            select = [f"to_varchar({name}, '{AS_TEXT[kind]}')" if kind in AS_TEXT else name for name, kind in cols]
            cur.execute(f"select {', '.join(select)} from {schema}.{table}")
            right = [tuple(map(_canonical, r)) for r in cur.fetchall()]
            out[table] = (len(left), len(right), same_rows(left, right))
    return out


@dataclass
class PromotionReport:
    """The Snowflake rehearsal: where it ran, bronze loaded, the dbt build, and each gold table compared."""

    account: str
    stand_in: bool  # fakesnow rather than a real account
    bronze_rows: dict[str, int]
    bronze_load: str
    transform: TransformReport
    compared: dict[str, tuple[int, int, bool]] = field(default_factory=dict)  # table: (duckdb, snowflake, same)

    @property
    def identical(self) -> bool:
        return self.transform.success and bool(self.compared) and all(same for *_, same in self.compared.values())


def rehearse(settings: Settings, progress: Progress = SILENT) -> PromotionReport:
    """DuckDB rebuilt from bronze as it is now, then bronze into Snowflake (fakesnow when no account is set), the
    same dbt models with ``--target snowflake``, and every gold table compared with DuckDB's."""
    from pipeline.batch.lane import transform

    # Both targets are built from the same bronze: the DuckDB side is refreshed and rebuilt first.
    local = transform(settings, "duckdb", docs=False, progress=progress)
    if not local.success:
        raise ServiceError("promote: the DuckDB build failed, so there is nothing to compare Snowflake with")
    stand_in = not settings.snowflake.account
    sf = snowflake_target(settings)
    settings = settings.replace(snowflake=sf)
    progress.update("bronze", description="loading bronze into Snowflake", total=None)
    counts = refresh_bronze(settings, sf)
    progress.update("bronze", description="bronze in Snowflake", total=1, completed=1)
    # fakesnow cannot create the temporary tables dbt's unit tests use; they run on DuckDB and on a real account.
    extra = ["--exclude-resource-type", "unit_test"] if stand_in else []
    built = transform(settings, "snowflake", docs=False, extra=extra, progress=progress)
    report = PromotionReport(str(sf.account), stand_in, counts, sf.bronze_load, built)
    if built.success:
        report.compared = compare_marts(settings.warehouse_path, sf)
    return report
