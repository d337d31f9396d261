"""The loader fuzzed end to end into a real PostgreSQL: a mutated file (tests/unit/test_loader_fuzz.py's mutations)
in an otherwise valid data set either fails the load with one clear line naming it, or loads with every record
accounted for: read == loaded + quarantined, and the quarantine table holds a row per refused record with its file,
line and reason. COPY never sees a value PostgreSQL refuses (a NUL byte in free text, say)."""

from __future__ import annotations

import os
import shutil
import uuid

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.batch.generator import generate
from pipeline.batch.load import load_directory
from pipeline.batch.load.reader import LoadError
from pipeline.contracts import load_registry
from tests.unit.test_loader_fuzz import MUTATIONS, TABLES, mutate

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("OLIST_FUZZ_LOAD_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz-load")
    generate(scale=0.002, seed=9, out_dir=out)
    return out


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(table=st.sampled_from(TABLES),
       ops=st.lists(st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 2**31)), min_size=1, max_size=3))
def test_a_mutated_file_loads_with_every_record_accounted_for_or_fails_in_one_line(
        postgres, dataset, tmp_path_factory, table, ops):
    ds = load_registry().dataset(table)
    work = tmp_path_factory.mktemp("case")
    for f in dataset.iterdir():
        shutil.copy(f, work / f.name)
    target = work / (ds.source_file or table)
    target.write_bytes(mutate(target.read_bytes(), table, ops))
    schema = f"fz_{uuid.uuid4().hex[:8]}"
    try:
        try:
            summary = load_directory(work, postgres.conninfo(), schema)
        except LoadError as exc:
            assert "\n" not in str(exc) and target.name in str(exc), str(exc)
            return
        for r in summary.results:
            assert r.read == r.loaded + r.quarantined, r
        with psycopg.connect(postgres.conninfo()) as conn:
            rows = conn.execute(f"select source_file, line_number, reason from {schema}.load_quarantine "
                                "where run_id = %s", (summary.run_id,)).fetchall()
        assert len(rows) == summary.quarantined
        assert all(file and line >= 2 and reason for file, line, reason in rows)
    finally:
        with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
            conn.execute(f"drop schema if exists {schema} cascade")
