"""Contracts: the standard's model, the project's lint rules, generated artifacts and breaking-change diffs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.contracts import load_registry
from pipeline.contracts.artifacts import render_all, stale
from pipeline.contracts.diff import diff, registry_at_ref
from pipeline.contracts.lint import lint
from pipeline.contracts.registry import CONTRACTS_DIR
from pipeline.contracts.render_postgres import render_schema

SOURCE_TABLES = {"customers", "geolocation", "orders", "order_items", "order_payments", "order_reviews",
                 "products", "sellers", "product_category_name_translation"}


def test_the_repository_contracts_are_sound():
    assert lint() == []


def test_every_source_table_has_a_contract_and_a_file(registry):
    tables = registry.source_tables()
    assert {t.name for t in tables} == SOURCE_TABLES
    assert all(t.source_file and t.csv_format for t in tables)


def test_load_order_puts_parents_first(registry):
    order = [t.name for t in registry.source_tables()]
    for ds in registry.source_tables():
        for col in ds.columns:
            for parent, _ in col.references:
                assert order.index(parent) < order.index(ds.name)


@pytest.mark.parametrize(("table", "column", "values"), [
    ("orders", "order_status", 8), ("order_payments", "payment_type", 5), ("customers", "customer_state", 27),
    ("sellers", "seller_state", 27), ("geolocation", "geolocation_state", 27)])
def test_enums_are_in_the_contracts(registry, table, column, values):
    assert len(registry.dataset(table).column(column).enum) == values


def test_ranges_are_in_the_contracts(registry):
    assert (registry.dataset("order_reviews").column("review_score").minimum,
            registry.dataset("order_reviews").column("review_score").maximum) == (1, 5)
    inst = registry.dataset("order_payments").column("payment_installments")
    assert (inst.minimum, inst.maximum) == (0, 24)
    for table, col in [("order_items", "price"), ("order_items", "freight_value"), ("order_payments", "payment_value")]:
        assert registry.dataset(table).column(col).minimum == 0


def test_generated_artifacts_are_current():
    assert stale() == []


def test_ddl_carries_every_column_key_and_rule(registry):
    ddl = render_schema(registry, "olist")
    for ds in registry.source_tables():
        block = ddl.split(f"CREATE TABLE IF NOT EXISTS olist.{ds.name} (")[1].split(");")[0]
        for col in ds.columns:
            line = next(x for x in block.splitlines() if x.strip().startswith(col.name + " "))
            assert col.physical_type in line
            assert ("NOT NULL" in line) == col.required
            for value in col.enum or ():
                assert f"'{value}'" in line
        if ds.primary_key:
            assert f"PRIMARY KEY ({', '.join(ds.primary_key)})" in block


@pytest.fixture
def contracts_copy(tmp_path: Path) -> Path:
    root = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, root, ignore=shutil.ignore_patterns("generated"))
    return root


def edit(root: Path, name: str, change) -> None:
    path = next(root.rglob(f"{name}.odcs.yaml"))
    doc = yaml.safe_load(path.read_text())
    change(doc["schema"][0])
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def prop(obj: dict, name: str) -> dict:
    return next(p for p in obj["properties"] if p["name"] == name)


@pytest.mark.parametrize(("table", "change", "expected"), [
    ("orders", lambda o: prop(o, "order_status").update(logicalType="text"), "logicalType: 'text' is not one of"),
    ("orders", lambda o: prop(o, "customer_id").update(relationships=[{"to": "clients.customer_id"}]),
     "relationship to unknown table clients"),
    ("orders", lambda o: prop(o, "customer_id").update(relationships=[{"to": "customers.nope"}]),
     "relationship to unknown column customers.nope"),
    ("orders", lambda o: prop(o, "customer_id").update(relationships=[{"to": "customers.customer_city"}]),
     "is not a unique key"),
    ("sellers", lambda o: prop(o, "seller_state")["enum"].pop(), "valueDomain brazilian_state: enums differ"),
    ("order_payments", lambda o: prop(o, "payment_type")["enum"].append({"value": 7}), "do not fit string"),
    ("order_reviews", lambda o: prop(o, "review_score").update(logicalTypeOptions={"minimum": 6, "maximum": 5}),
     "minimum 6 is above maximum 5"),
    ("order_items", lambda o: prop(o, "order_item_id").update(primaryKeyPosition=3), "primaryKeyPosition must run"),
    ("orders", lambda o: prop(o, "order_id").update(required=False), "a primary key column must be required"),
])
def test_lint_catches_broken_contracts(contracts_copy, table, change, expected):
    edit(contracts_copy, table, change)
    issues = [str(i) for i in lint(contracts_copy)]
    load_registry.cache_clear()
    assert any(expected in i for i in issues), issues


def _diff_after(contracts_copy: Path, table: str, change) -> list[str]:
    old = load_registry(contracts_copy)
    new_root = contracts_copy.parent / "new" / "contracts"
    shutil.copytree(contracts_copy, new_root)
    edit(new_root, table, change)
    return [str(c) for c in diff(old, load_registry(new_root))]


@pytest.mark.parametrize(("table", "change", "expected"), [
    ("orders", lambda o: o["properties"].remove(prop(o, "order_approved_at")),
     "BREAKING: orders.order_approved_at: column removed or renamed"),
    ("orders", lambda o: prop(o, "order_status").update(name="status"),
     "BREAKING: orders.order_status: column removed or renamed"),
    ("orders", lambda o: prop(o, "order_status").update(physicalType="varchar(8)"),
     "BREAKING: orders.order_status: physical type varchar(16) -> varchar(8) narrows"),
    ("order_items", lambda o: prop(o, "price").update(physicalType="numeric(8,2)"),
     "BREAKING: order_items.price: physical type numeric(12,2) -> numeric(8,2) narrows"),
    ("order_items", lambda o: prop(o, "order_item_id").update(physicalType="integer"), None),
    ("orders", lambda o: o["properties"].append({"name": "channel", "logicalType": "string",
                                                 "physicalType": "text", "required": True}),
     "BREAKING: orders.channel: new required column"),
    ("orders", lambda o: prop(o, "order_approved_at").update(required=True),
     "BREAKING: orders.order_approved_at: became required"),
    ("order_payments", lambda o: prop(o, "payment_type")["enum"].pop(),
     "BREAKING: order_payments.payment_type: enum values removed: ['not_defined']"),
    ("order_payments", lambda o: prop(o, "payment_installments")["logicalTypeOptions"].update(maximum=12),
     "BREAKING: order_payments.payment_installments: maximum 24 -> 12"),
    ("orders", lambda o: o["properties"].append({"name": "channel", "logicalType": "string",
                                                 "physicalType": "text", "required": False}), None),
])
def test_diff_flags_breaking_changes(contracts_copy, table, change, expected):
    changes = _diff_after(contracts_copy, table, change)
    if expected is None:
        assert changes and not any(c.startswith("BREAKING") for c in changes), changes
    else:
        assert expected in changes, changes


def test_diff_against_a_git_ref(contracts_copy):
    repo = contracts_copy.parent
    run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    run("-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "contracts")
    edit(contracts_copy, "order_payments", lambda o: prop(o, "payment_type")["enum"].pop())
    old = registry_at_ref("HEAD", repo)
    changes = [str(c) for c in diff(old, load_registry(contracts_copy))]
    assert changes == ["BREAKING: order_payments.payment_type: enum values removed: ['not_defined']"]


def test_a_breaking_change_passes_only_with_a_major_version(contracts_copy):
    """Removing an enum value breaks consumers: it fails the diff, unless the contract's major version rose."""
    old = load_registry(contracts_copy)
    new_root = contracts_copy.parent / "new" / "contracts"
    shutil.copytree(contracts_copy, new_root)
    edit(new_root, "order_payments", lambda o: prop(o, "payment_type")["enum"].pop())
    (change,) = diff(old, load_registry(new_root))
    assert change.breaking and change.fails
    path = next(new_root.rglob("order_payments.odcs.yaml"))
    path.write_text(path.read_text().replace("version: 1.0.0", "version: 2.0.0", 1))
    load_registry.cache_clear()
    (change,) = diff(old, load_registry(new_root))
    assert change.breaking and not change.fails and change.announced == "version 1.0.0 -> 2.0.0", change


def test_render_all_lists_the_postgres_ddl():
    assert Path("contracts/generated/postgres/olist.sql") in render_all()


def test_check_reports_a_hand_edited_artifact(tmp_path):
    for rel, content in render_all().items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(content)
    assert stale(tmp_path) == []
    target = tmp_path / "contracts/generated/postgres/olist.sql"
    target.write_text(target.read_text().replace("varchar(32)", "text", 1))
    assert stale(tmp_path) == [Path("contracts/generated/postgres/olist.sql")]
