"""One settings model for the whole platform, fed by ``OLIST_*`` environment variables.

Every default works on a fresh machine with nothing configured: services bind to 127.0.0.1 on
free ports and keep their data under the project's ``.state`` folder.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Ports, folders, credentials and scale; override any field with ``OLIST_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="OLIST_", env_file=".env", extra="ignore")

    state_dir: Path = Field(PROJECT_ROOT / ".state", description="Runtime state of local services.")
    data_dir: Path = Field(PROJECT_ROOT / "data" / "sample", description="Where the CSV files are read.")
    scale: float = Field(0.02, gt=0, le=5, description="Generator scale; 1.0 = the full Olist data set.")
    seed: int = Field(42, description="Generator seed; same seed, same bytes.")

    bind_host: str = Field("127.0.0.1", description="Every local service binds here only.")
    pg_port: int = Field(0, ge=0, lt=65536, description="0 picks a free port at first start.")
    pg_database: str = "olist"
    pg_schema: str = "olist"
    pg_user: str = "olist"
    pg_password: str | None = Field(None, description="Unset: a random one is made at first start.")
    pg_os_user: str = Field("postgres", description="Unprivileged OS user that runs PostgreSQL as root.")
    pg_bin_dir: Path | None = Field(None, description="Unset: the newest /usr/lib/postgresql/*/bin.")

    s3_endpoint_url: str | None = Field(None, description="Unset: the local moto server (olist up s3).")
    s3_port: int = Field(0, ge=0, lt=65536, description="Local S3 port; 0 picks a free one.")
    s3_region: str = "us-east-1"
    s3_bucket: str = "olist-lake"
    # The local emulator accepts any key; set real ones (or leave unset for AWS's own chain) elsewhere.
    s3_access_key_id: str = "emulation"
    s3_secret_access_key: str = "emulation"
    bronze_prefix: str = "bronze"
    duckdb_path: Path | None = Field(None, description="DuckDB warehouse; unset: <state_dir>/warehouse/olist.duckdb.")
    dashboard_target: Literal["duckdb", "snowflake"] = Field(
        "duckdb", description="Warehouse the BI views read: duckdb (the local file) or snowflake (SNOWFLAKE_*).")

    service_start_timeout: float = 60.0

    stream_rate: float = Field(300.0, gt=0, description="Demo: payment-row changes per second the simulator commits.")
    stream_seconds: float = Field(60.0, gt=0, description="Demo: how long the simulator runs.")
    stream_seed: int = Field(7, description="Demo: the simulator's seed.")

    @property
    def quarantine_table(self) -> str:
        return "load_quarantine"


@functools.cache
def get_settings() -> Settings:
    return Settings()
