"""The contracts checked by the field's own tool (datacontract-cli, in a venv of its own): `lint` passes on every
contract without a warning, and `test` passes on the tables the loader filled from a generated sample and on their
bronze on S3 after ingestion, where it names a bad value that got past PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pyarrow.fs as pafs
import pytest

from pipeline.batch.lane import generate, ingest, load
from pipeline.contracts import datacontract_cli
from pipeline.contracts.registry import contract_files
from pipeline.storage import s3_location

pytestmark = pytest.mark.integration

SCHEMA = "datacontract_test"
BRONZE = "datacontract-bronze"
BAD_SCHEMA = "datacontract_bad"
BAD_BRONZE = "datacontract-bad-bronze"


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


def passed_cleanly(report: datacontract_cli.ToolReport) -> list[str]:
    """Every source table tested, no problem, at least 150 checks passed, enum and row-count checks among them;
    the names of the passed checks."""
    assert report.files == 9
    assert not report.problems, "\n".join(f"{c.file}: {c.field}: {c.check}: {c.reason}" for c in report.problems)
    passed = [c.check for c in report.checks if c.result == "passed"]
    assert len(passed) >= 150
    assert any("enum" in c for c in passed) and any("row_count" in c or "rowCount" in c for c in passed), passed
    return passed


def test_datacontract_test_passes_on_the_loaded_tables(loaded):
    """Schema checks (types, required, unique, enums, patterns, ranges) and the contracts' quality rules (row
    counts, duplicates, missing values) on every source table; relationships to another contract's table are
    the one thing the tool cannot see from one file (the project's lint and dbt's relationships tests do)."""
    report = datacontract_cli.check_postgres(loaded)
    passed_cleanly(report)
    assert all(c.across_contracts for c in report.checks if c.result == "warning")


def _drop_bronze(settings) -> None:
    loc = s3_location(settings)
    loc.arrow_fs().delete_dir(loc.path(settings.bronze_prefix))


def _scratch_left(settings) -> list[str]:
    loc = s3_location(settings)
    infos = loc.arrow_fs().get_file_info(pafs.FileSelector(loc.path(settings.bronze_prefix)))
    return [i.path for i in infos if datacontract_cli.BRONZE_SCRATCH in i.path]


@pytest.fixture(scope="module")
def bronze(loaded, s3):
    """The loaded tables ingested to a bronze prefix of their own."""
    settings = loaded.replace(bronze_prefix=BRONZE)
    assert ingest(settings).reconciled
    yield settings
    _drop_bronze(settings)


def test_datacontract_test_passes_on_bronze(bronze):
    """The same checks on each table's current state as read from its committed bronze files, through the tool's
    own S3 reader; the Parquet type checks are the tool's to skip (it casts the files into the contract's types)."""
    report = datacontract_cli.check_bronze(bronze)
    passed = passed_cleanly(report)
    assert any("primary key" in c or "unique" in c for c in passed), passed
    assert all(c.across_contracts or c.parquet_types for c in report.checks if c.result == "warning")
    assert not _scratch_left(bronze)


@pytest.fixture
def bad_bronze(postgres, s3, test_settings, tmp_path):
    """A sample loaded and ingested, then an order set to a status the contract does not know, past PostgreSQL's
    check (as a writer without the contract's DDL would), and a review deleted; ingested again."""
    settings = test_settings.replace(pg_schema=BAD_SCHEMA, bronze_prefix=BAD_BRONZE)
    generate(settings, out=tmp_path)
    load(settings, data_dir=tmp_path)
    ingest(settings)
    try:
        with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
            conn.execute(f"alter table {BAD_SCHEMA}.orders drop constraint orders_order_status_check")
            conn.execute(f"update {BAD_SCHEMA}.orders set order_status = 'lost' "
                         f"where order_id = (select min(order_id) from {BAD_SCHEMA}.orders)")
            conn.execute(f"delete from {BAD_SCHEMA}.order_reviews where (review_id, order_id) = "
                         f"(select review_id, order_id from {BAD_SCHEMA}.order_reviews order by 1, 2 limit 1)")
        assert ingest(settings).reconciled
        yield settings
    finally:
        with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
            conn.execute(f"drop schema if exists {BAD_SCHEMA} cascade")
        _drop_bronze(settings)


def test_datacontract_test_on_bronze_names_a_bad_value(bad_bronze):
    """The bad status is named by table and field, and nothing else is: the order's superseded version and the
    review's delete are not the current state, so the keys stay unique."""
    report = datacontract_cli.check_bronze(bad_bronze)
    assert {(Path(c.file).name, c.field) for c in report.problems} == {("orders.odcs.yaml", "order_status")}, \
        report.problems
    assert any("enum" in c.check and c.result == "failed" for c in report.problems), report.problems
    assert not _scratch_left(bad_bronze)
