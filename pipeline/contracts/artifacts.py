"""Every schema artifact generated from the contracts, and the drift check CI runs."""

from __future__ import annotations

from pathlib import Path

from pipeline.contracts.registry import CONTRACTS_DIR, Registry, load_registry
from pipeline.contracts.render_cassandra import cql_path, render_cassandra
from pipeline.contracts.render_dbt import render_dbt
from pipeline.contracts.render_flink import render_flink
from pipeline.contracts.render_jsonschema import render_topics
from pipeline.contracts.render_postgres import render_schema
from pipeline.contracts.render_snowflake import render_bronze

GENERATED_DIR = CONTRACTS_DIR / "generated"


def render_all(registry: Registry | None = None) -> dict[Path, str]:
    """Artifact path (relative to the repository) -> content."""
    registry = registry or load_registry()
    return {
        Path("contracts/generated/postgres/olist.sql"): render_schema(registry, "olist"),
        Path("contracts/generated/snowflake/bronze.sql"): render_bronze(registry),
        Path(cql_path(registry)): render_cassandra(registry),
        **render_dbt(registry),
        **render_topics(registry),
        **render_flink(registry),
    }


def write_all(repo_root: Path = CONTRACTS_DIR.parent) -> list[Path]:
    written = []
    for rel, content in render_all().items():
        path = repo_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
            written.append(rel)
    return written


def stale(repo_root: Path = CONTRACTS_DIR.parent) -> list[Path]:
    """Generated files that are missing or differ from what the contracts generate now."""
    out = []
    for rel, content in render_all().items():
        path = repo_root / rel
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            out.append(rel)
    return out
