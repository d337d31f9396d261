"""The contracts checked by the field's own tool (datacontract-cli, in a venv of its own): `lint` passes on every
contract without a warning, and `test` passes on the tables the loader filled from a generated sample."""

from __future__ import annotations

import psycopg
import pytest

from pipeline.batch.lane import generate, load
from pipeline.contracts import datacontract_cli
from pipeline.contracts.registry import contract_files

pytestmark = pytest.mark.integration

SCHEMA = "datacontract_test"


def test_every_contract_passes_datacontract_lint_without_a_warning():
    report = datacontract_cli.lint()
    assert report.files == len(contract_files()) and report.passed >= report.files
    assert not [c for c in report.checks if c.result != "passed"], report.checks


@pytest.fixture(scope="module")
def loaded(postgres, test_settings, tmp_path_factory):
    settings = test_settings.replace(pg_schema=SCHEMA)
    out = tmp_path_factory.mktemp("datacontract-sample")
    generate(settings, out=out)
    summary = load(settings, data_dir=out)
    assert summary.loaded > 0
    yield settings
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f"drop schema if exists {SCHEMA} cascade")


def test_datacontract_test_passes_on_the_loaded_tables(loaded):
    """Schema checks (types, required, unique, enums, patterns, ranges) and the contracts' quality rules (row
    counts, duplicates, missing values) on every source table; relationships to another contract's table are
    the one thing the tool cannot see from one file (the project's lint and dbt's relationships tests do)."""
    report = datacontract_cli.check_postgres(loaded)
    assert report.files == 9
    assert not report.problems, "\n".join(f"{c.file}: {c.field}: {c.check}: {c.reason}" for c in report.problems)
    passed = [c.check for c in report.checks if c.result == "passed"]
    assert len(passed) >= 150
    assert any("enum" in c for c in passed) and any("row_count" in c or "rowCount" in c for c in passed), passed
    assert all(c.across_contracts for c in report.checks if c.result == "warning")
