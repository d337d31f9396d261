"""The provisioning layer against a real PostgreSQL: a contract change is planned with its verdict, applied online
with the data kept, refused whole when breaking, and finished by the next run after a SIGKILL between two steps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from pipeline import provision
from pipeline.batch.load import load_directory
from pipeline.contracts import Registry, load_registry
from pipeline.provision import PendingChange
from pipeline.settings import PROJECT_ROOT
from tests.contract_edits import copied_contracts, edit_contract, prop

pytestmark = pytest.mark.integration


@pytest.fixture
def schema(postgres, request):
    name = "p_" + request.node.name.lower()[:40]
    yield name
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f"drop schema if exists {name} cascade")


@pytest.fixture
def settings(test_settings, schema):
    return test_settings.model_copy(update={"pg_schema": schema})


def changed_contracts(tmp_path: Path, change: dict[str, callable]) -> Registry:
    """A copy of contracts/ with ``change[table](properties)`` applied to each named table's contract."""
    root = copied_contracts(tmp_path)
    for table, edit in change.items():
        edit_contract(root / "olist" / f"{table}.odcs.yaml", lambda obj, edit=edit: edit(obj["properties"]))
    return load_registry(root)


CHANNEL = {"name": "payment_channel", "description": "Where the payment was made.", "logicalType": "string",
           "physicalType": "varchar(16)", "required": False}


def columns(postgres, schema: str, table: str) -> dict[str, str]:
    with psycopg.connect(postgres.conninfo()) as conn:
        return dict(conn.execute("select column_name, data_type from information_schema.columns "
                                 "where table_schema = %s and table_name = %s", (schema, table)).fetchall())


def rows(postgres, schema: str, table: str) -> list[tuple]:
    with psycopg.connect(postgres.conninfo()) as conn:
        return conn.execute(f"select * from {schema}.{table} order by 1, 2").fetchall()


def test_an_added_optional_column_is_pending_for_load_until_apply_then_loads_with_the_data_kept(
        postgres, schema, settings, tiny_dir, tmp_path):
    """The issue as a new user met it: a compatible new column made `olist load` die with UndefinedColumn. Now the
    load says in one line which step is pending; `apply` adds the column online; the next load keeps every row."""
    load_directory(tiny_dir, postgres.conninfo(), schema)
    before = rows(postgres, schema, "order_payments")
    registry = changed_contracts(tmp_path, {"order_payments": lambda props: props.append(CHANNEL)})

    with pytest.raises(PendingChange) as pending:
        load_directory(tiny_dir, postgres.conninfo(), schema, registry)
    message = str(pending.value)
    assert "\n" not in message and f"{schema}.order_payments: add column payment_channel varchar(16)" in message
    assert "`olist apply` makes it" in message

    plan = provision.plan(settings, ["postgres"], registry)
    assert [(s.target, s.action, s.verdict) for s in plan.steps] == [
        (f"{schema}.order_payments", "add column payment_channel varchar(16)", "compatible")]
    report = provision.apply(settings, ["postgres"], registry=registry)
    assert report.ok and [a.step.action for a in report.applied] == ["add column payment_channel varchar(16)"]
    assert provision.plan(settings, ["postgres"], registry).converged
    assert provision.apply(settings, ["postgres"], registry=registry).applied == [], "idempotent"

    summary = load_directory(tiny_dir, postgres.conninfo(), schema, registry)  # the files predate the column
    assert summary.quarantined == 0
    after = rows(postgres, schema, "order_payments")
    assert [r[:-2] for r in after] == [r[:-1] for r in before], "every row kept as it was"
    assert all(r[-1] is None for r in after), "the new column is null where no file had it"


def test_widened_types_and_a_new_enum_value_apply_online_and_the_new_value_is_accepted(
        postgres, schema, settings, tiny_dir, tmp_path):
    load_directory(tiny_dir, postgres.conninfo(), schema)

    def edit(props):
        prop(props, "payment_type")["enum"].append({"value": "pix"})
        prop(props, "payment_installments")["physicalType"] = "integer"
        prop(props, "payment_type")["physicalType"] = "varchar(24)"

    registry = changed_contracts(tmp_path, {"order_payments": edit})
    plan = provision.plan(settings, ["postgres"], registry)
    assert sorted((s.action, s.verdict) for s in plan.steps) == [
        ("allow 'pix' in payment_type", "compatible"),
        ("widen column payment_installments smallint -> integer", "compatible"),
        ("widen column payment_type character varying(16) -> character varying(24)", "compatible")]
    assert provision.apply(settings, ["postgres"], registry=registry).ok
    assert provision.plan(settings, ["postgres"], registry).converged
    with psycopg.connect(postgres.conninfo()) as conn:
        order, _ = conn.execute(f"select order_id, payment_sequential from {schema}.order_payments").fetchone()
        conn.execute(f"update {schema}.order_payments set payment_type = 'pix' where order_id = %s", (order,))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(f"update {schema}.order_payments set payment_type = 'barter' where order_id = %s", (order,))


@pytest.mark.parametrize(("edit", "breaking"), [
    (lambda props: prop(props, "payment_type")["enum"].pop(), "narrow the CHECK of column payment_type"),
    (lambda props: prop(props, "order_id").update(physicalType="varchar(20)"),
     "change column order_id character varying(32) -> character varying(20)"),
    (lambda props: props.remove(prop(props, "payment_value")), "column payment_value is not in the contract"),
    (lambda props: props.append({**CHANNEL, "required": True}),
     "add required column payment_channel varchar(16) NOT NULL"),
], ids=["enum-value-removed", "type-narrowed", "column-removed", "required-column-added"])
def test_a_breaking_change_is_refused_whole_and_changes_nothing(postgres, schema, settings, tiny_dir, tmp_path, edit,
                                                                breaking):
    load_directory(tiny_dir, postgres.conninfo(), schema)

    def with_a_compatible_one_too(props):
        props.append({**CHANNEL, "name": "payment_note"})
        edit(props)

    registry = changed_contracts(tmp_path, {"order_payments": with_a_compatible_one_too})
    shape = columns(postgres, schema, "order_payments")
    plan = provision.plan(settings, ["postgres"], registry)
    assert [s.action for s in plan.breaking] == [breaking]
    detail = plan.breaking[0].detail  # names the contract, and a safe migration
    assert detail.startswith("contract olist.order_payments 1.1.0") and ("new major version" in detail
                                                                         or "add it optional, backfill" in detail)
    report = provision.apply(settings, ["postgres"], registry=registry)
    assert not report.ok and report.applied == [] and report.refused == plan.breaking
    assert columns(postgres, schema, "order_payments") == shape, "nothing applied, not even the compatible step"


APPLY = textwrap.dedent("""
    import sys
    from pipeline import provision
    from pipeline.contracts import load_registry
    from pipeline.settings import Settings
    settings = Settings.model_validate_json(open(sys.argv[1]).read())
    provision.apply(settings, ["postgres"], registry=load_registry(__import__("pathlib").Path(sys.argv[2])))
""")


def test_an_apply_killed_between_two_steps_is_finished_by_the_next(postgres, schema, settings, tiny_dir, tmp_path):
    """Step one commits, step two waits for a long reader of its table; the apply is SIGKILLed there. The next run plans
    only what is left, and makes it."""
    load_directory(tiny_dir, postgres.conninfo(), schema)
    registry = changed_contracts(tmp_path, {"customers": lambda props: props.append({**CHANNEL, "name": "nickname"}),
                                            "order_payments": lambda props: props.append(CHANNEL)})
    assert [s.target.split(".")[1] for s in provision.plan(settings, ["postgres"], registry).steps] == [
        "customers", "order_payments"]
    config = tmp_path / "settings.json"
    config.write_text(settings.model_dump_json())
    with psycopg.connect(postgres.conninfo()) as blocker:
        blocker.execute(f"lock table {schema}.order_payments in access share mode")  # a long reader, as a SELECT
        proc = subprocess.Popen([sys.executable, "-c", APPLY, str(config), str(registry.root)], cwd=PROJECT_ROOT,
                                env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
        deadline = time.monotonic() + 60
        while "nickname" not in columns(postgres, schema, "customers"):
            assert proc.poll() is None and time.monotonic() < deadline, "the first step never committed"
            time.sleep(0.1)
        time.sleep(0.5)  # the second step is now waiting on the lock
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        blocker.rollback()
    assert "payment_channel" not in columns(postgres, schema, "order_payments")
    left = provision.plan(settings, ["postgres"], registry)
    assert [s.action for s in left.steps] == ["add column payment_channel varchar(16)"]
    report = provision.apply(settings, ["postgres"], registry=registry)
    assert [a.step.target for a in report.applied] == [f"{schema}.order_payments"]
    assert provision.plan(settings, ["postgres"], registry).converged


def test_the_cli_plans_applies_and_refuses_in_one_line_each(postgres, schema, test_settings, tiny_dir, monkeypatch):
    """`olist plan` / `olist apply` on the settings' engines: a converged platform says so (exit 0), an unknown
    engine is one line (exit 1, no traceback), and a trigger someone dropped is planned and made again."""
    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.settings import get_settings

    monkeypatch.setenv("OLIST_STATE_DIR", str(test_settings.state_dir))
    monkeypatch.setenv("OLIST_PG_SCHEMA", schema)
    get_settings.cache_clear()
    try:
        load_directory(tiny_dir, postgres.conninfo(), schema)
        runner = CliRunner()
        converged = runner.invoke(app, ["plan", "--engine", "postgres"])
        assert converged.exit_code == 0 and "nothing to do" in converged.output, converged.output
        unknown = runner.invoke(app, ["plan", "--engine", "oracle"])
        assert unknown.exit_code == 1 and "unknown engine 'oracle'" in unknown.output
        assert "Traceback" not in unknown.output
        with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:  # drift: someone dropped a trigger
            conn.execute(f"drop trigger order_payments_touch on {schema}.order_payments")
        drift = runner.invoke(app, ["plan", "--engine", "postgres"])
        assert drift.exit_code == 0 and "add change tracking (order_payments_touch)" in drift.output, drift.output
        applied = runner.invoke(app, ["apply", "--engine", "postgres"])
        assert applied.exit_code == 0 and "1 step applied" in applied.output, applied.output
        assert provision.plan(get_settings(), ["postgres"]).converged
    finally:
        get_settings.cache_clear()
