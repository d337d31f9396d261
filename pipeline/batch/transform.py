"""Run the dbt project (bronze -> silver -> gold) on the configured target with the platform's settings."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.storage import s3_location

DBT_DIR = PROJECT_ROOT / "dbt"


def dbt_env(settings: Settings, target: str = "duckdb") -> dict[str, str]:
    """What ``dbt/profiles.yml`` reads through ``env_var`` (the ``SNOWFLAKE_*`` of ``settings.snowflake`` too)."""
    env = {"OLIST_DBT_TARGET": target, "OLIST_DUCKDB_PATH": str(settings.warehouse_path),
           "OLIST_BRONZE_PREFIX": settings.bronze_prefix, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           "OLIST_FLINK_WINDOW_SECONDS": str(settings.flink.window_seconds)}
    if target == "snowflake":
        sf = settings.snowflake.model_dump(exclude={"bronze_load"})
        env |= {f"SNOWFLAKE_{k.upper()}": str(v) for k, v in sf.items() if v is not None}
    return env


@contextlib.contextmanager
def environment(extra: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def refresh_bronze(settings: Settings, tables: list[str] | None = None) -> dict[str, int]:
    """Materialise each bronze source in the DuckDB warehouse from exactly the committed S3 files.

    DuckDB's own S3 reader (httpfs) cannot be installed offline, and a glob over the prefix would also take
    files of a run that never committed; so bronze is read through the manifests with Arrow's S3 client.
    """
    import duckdb

    from pipeline.batch.ingest.read import bronze_readers

    loc = s3_location(settings)
    counts = {}
    path = settings.warehouse_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists bronze")
        for name, read in bronze_readers(settings, loc).items():
            if tables is not None and name not in tables:
                continue
            arrow = read()
            con.register("bronze_arrow", arrow)
            con.execute(f"create or replace table bronze.{name} as select * from bronze_arrow")
            con.unregister("bronze_arrow")
            counts[name] = arrow.num_rows
    return counts


@dataclass
class DbtRun:
    success: bool
    results: list[tuple[str, str, float, str]] = field(default_factory=list)  # node, status, seconds, message
    error: str = ""

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r[1] == status)


def run_dbt(command: list[str], settings: Settings, target: str = "duckdb",
            on_node: Callable[[str, str], None] | None = None, timeout: float = 1800) -> DbtRun:
    """``dbt <command>`` against ``target``; ``on_node(name, status)`` after each node.

    DuckDB runs in-process. Snowflake runs in a child process under ``timeout``: the connector retries
    a failing endpoint for ever.
    """
    from dbt.cli.main import dbtRunner

    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    if target != "duckdb":
        return _run_dbt_process(command, settings, target, timeout)

    def callback(event) -> None:
        if on_node and event.info.name == "NodeFinished":
            node = event.data.node_info
            on_node(node.unique_id, node.node_status)

    args = [*command, "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR), "--target", target,
            "--log-path", str(settings.state_dir / "dbt-logs"), "--target-path", str(settings.dbt_target_dir(target))]
    with environment(dbt_env(settings, target)):
        res = dbtRunner(callbacks=[callback]).invoke(args)
    run = DbtRun(success=bool(res.success), error=str(res.exception or ""))
    for r in getattr(res.result, "results", None) or []:
        run.results.append((r.node.unique_id, str(r.status), float(r.execution_time or 0), r.message or ""))
    return run


def _run_dbt_process(command: list[str], settings: Settings, target: str, timeout: float) -> DbtRun:
    import json
    import subprocess
    import sys

    target_path = settings.dbt_target_dir(target)
    dbt = Path(sys.executable).parent / "dbt"
    args = [str(dbt), *command, "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR), "--target", target,
            "--log-path", str(settings.state_dir / "dbt-logs"), "--target-path", str(target_path)]
    try:
        proc = subprocess.run(args, env={**os.environ, **dbt_env(settings, target)}, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return DbtRun(False, error=f"dbt on {target} did not finish within {timeout:.0f} s")
    run = DbtRun(success=proc.returncode == 0, error="" if proc.returncode == 0 else proc.stdout[-2000:])
    results = target_path / "run_results.json"
    if results.exists():
        for r in json.loads(results.read_text())["results"]:
            run.results.append((r["unique_id"], r["status"], float(r["execution_time"] or 0), r.get("message") or ""))
    return run
