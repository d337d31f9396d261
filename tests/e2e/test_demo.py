"""The demo end to end: start PostgreSQL, generate the sample, load it; every row accounted for."""

from __future__ import annotations

import csv

import psycopg
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.settings import get_settings

pytestmark = pytest.mark.e2e


@pytest.fixture
def demo_env(postgres, test_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("OLIST_STATE_DIR", str(test_settings.state_dir))
    monkeypatch.setenv("OLIST_DATA_DIR", str(tmp_path / "sample"))
    monkeypatch.setenv("OLIST_PG_SCHEMA", "e2e_demo")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute("drop schema if exists e2e_demo cascade")


def file_rows(path) -> int:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


def test_demo_loads_every_generated_row(demo_env, postgres, registry):
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "0 quarantined" in result.output
    with psycopg.connect(postgres.conninfo()) as conn:
        for ds in registry.source_tables():
            in_db = conn.execute(f"select count(*) from e2e_demo.{ds.name}").fetchone()[0]
            assert in_db == file_rows(demo_env.data_dir / ds.source_file) > 0, ds.name
        orphans = conn.execute(
            "select count(*) from e2e_demo.order_items i left join e2e_demo.orders o using (order_id) "
            "where o.order_id is null").fetchone()[0]
        assert orphans == 0
        # The sample keeps the data set's shape: ~2,000 orders, most delivered, a multi-line review.
        orders, delivered = conn.execute(
            "select count(*), count(*) filter (where order_status = 'delivered') from e2e_demo.orders").fetchone()
        assert 1900 <= orders <= 2100 and delivered / orders > 0.9
        multiline = conn.execute(
            "select count(*) from e2e_demo.order_reviews where review_comment_message like E'%\\r\\n%'").fetchone()
        assert multiline[0] > 0
    again = CliRunner().invoke(app, ["load"])
    assert again.exit_code == 0, again.output


def normalise(value, logical_type):
    if value in (None, ""):
        return None
    if logical_type == "number":
        return round(float(value), 9)
    if logical_type == "integer":
        return int(float(value))
    return str(value)


def test_every_loaded_value_equals_the_file(demo_env, postgres, registry):
    """Read back every table and compare it, value by value, with the CSV read by Python's csv module."""
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    with psycopg.connect(postgres.conninfo()) as conn:
        for ds in registry.source_tables():
            types = [c.logical_type for c in ds.columns]
            cols = ", ".join(f"{c}::text" for c in ds.column_names)
            in_db = sorted(
                (tuple(normalise(v, t) for v, t in zip(row, types, strict=True))
                 for row in conn.execute(f"select {cols} from e2e_demo.{ds.name}")), key=repr)
            with (demo_env.data_dir / ds.source_file).open(encoding="utf-8-sig", newline="") as fh:
                in_file = sorted(
                    (tuple(normalise(row[c], t) for c, t in zip(ds.column_names, types, strict=True))
                     for row in csv.DictReader(fh)), key=repr)
            assert in_db == in_file, ds.name
