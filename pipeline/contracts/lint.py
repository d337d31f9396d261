"""`olist contracts lint`: the standard's JSON Schema, then the project's own rules across contracts."""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml
from open_data_contract_standard.model import OpenDataContractStandard

from pipeline.contracts.registry import (
    CONTRACTS_DIR,
    QUOTE_POLICIES,
    STREAM_ROLES,
    ContractError,
    contract_files,
    load_registry,
)

LOGICAL_TYPES_FOR_ENUM = {"string": str, "integer": int, "number": (int, float)}


@dataclass(frozen=True)
class LintIssue:
    """One problem found in a contract: the file, where in it, and what is wrong."""

    path: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.where}: {self.message}"


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(OpenDataContractStandard.json_schema())
    return jsonschema.validators.validator_for(schema)(schema)


def _schema_issues(path: Path, rel: str) -> list[LintIssue]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        return [LintIssue(rel, "yaml", str(exc).splitlines()[0])]
    issues = []
    for err in sorted(_validator().iter_errors(raw), key=lambda e: list(map(str, e.absolute_path))):
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        issues.append(LintIssue(rel, where, err.message.splitlines()[0][:300]))
    if raw and isinstance(raw, dict) and raw.get("kind") == "DataContract":
        expected = f"{raw.get('name')}.odcs.yaml"
        if path.name != expected:
            issues.append(LintIssue(rel, "name", f"file should be named {expected}"))
    return issues


def _above(lo: object, hi: object) -> bool:
    if lo is None or hi is None:
        return False
    if isinstance(lo, int | float) and isinstance(hi, int | float):
        return lo > hi
    return str(lo) > str(hi)  # ISO timestamps compare as text


def lint(root: Path = CONTRACTS_DIR) -> list[LintIssue]:
    """Every problem found in the contracts under ``root``; empty when they are sound."""
    issues: list[LintIssue] = []
    for path in contract_files(root):
        issues.extend(_schema_issues(path, str(path.relative_to(root.parent))))
    if issues:
        return issues
    load_registry.cache_clear()
    try:
        registry = load_registry(root)
    except ContractError as exc:
        return [LintIssue("contracts", "parse", str(exc))]

    ids: dict[str, str] = {}
    files: dict[str, str] = {}
    domains: dict[str, dict[tuple, list[str]]] = defaultdict(lambda: defaultdict(list))
    names = {ds.name: ds for ds in registry.datasets}
    for ds in registry.datasets:
        rel = str(ds.path.relative_to(root.parent))
        if ds.contract_id in ids and ids[ds.contract_id] != rel:
            issues.append(LintIssue(rel, "id", f"id {ds.contract_id} is also used by {ids[ds.contract_id]}"))
        ids[ds.contract_id] = rel
        if ds.source_file:
            if ds.source_file in files:
                other = files[ds.source_file]
                issues.append(LintIssue(rel, ds.name, f"sourceFile {ds.source_file} is also {other}'s"))
            files[ds.source_file] = ds.name
            if ds.csv_format is None:
                issues.append(LintIssue(rel, ds.name, "a source table needs a csvFormat custom property"))
            elif ds.csv_format.quote not in QUOTE_POLICIES:
                bad_quote = ds.csv_format.quote
                issues.append(LintIssue(rel, ds.name, f"csvFormat quote {bad_quote!r} not in {QUOTE_POLICIES}"))
        positions = sorted(c.primary_key_position or 0 for c in ds.columns if c.is_key)
        if positions != list(range(1, len(positions) + 1)):
            issues.append(LintIssue(rel, ds.name, f"primaryKeyPosition must run 1..n, found {positions}"))
        for col in ds.columns:
            where = f"{ds.name}.{col.name}"
            if not col.logical_type or not col.physical_type:
                issues.append(LintIssue(rel, where, "logicalType and physicalType are both required"))
            if col.is_key and not col.required:
                issues.append(LintIssue(rel, where, "a primary key column must be required"))
            if col.csv_quote and col.csv_quote not in QUOTE_POLICIES:
                issues.append(LintIssue(rel, where, f"csvQuote {col.csv_quote!r} not in {QUOTE_POLICIES}"))
            if _above(col.minimum, col.maximum):
                issues.append(LintIssue(rel, where, f"minimum {col.minimum} is above maximum {col.maximum}"))
            if col.enum is not None:
                if len(set(col.enum)) != len(col.enum):
                    issues.append(LintIssue(rel, where, "enum values repeat"))
                kind = LOGICAL_TYPES_FOR_ENUM.get(col.logical_type)
                wrong = [v for v in col.enum if kind is None or not isinstance(v, kind) or isinstance(v, bool)]
                if wrong:
                    issues.append(LintIssue(rel, where, f"enum values {wrong} do not fit {col.logical_type}"))
                if col.value_domain:
                    domains[col.value_domain][tuple(sorted(map(str, col.enum)))].append(where)
            for child in (col, *col.children):
                if child.row_of and child.row_of not in names:
                    issues.append(LintIssue(rel, where, f"rowOf names unknown dataset {child.row_of}"))
            for table, column in col.references:
                target = names.get(table)
                if target is None:
                    issues.append(LintIssue(rel, where, f"relationship to unknown table {table}"))
                    continue
                if column not in target.column_names:
                    issues.append(LintIssue(rel, where, f"relationship to unknown column {table}.{column}"))
                    continue
                tcol = target.column(column)
                if not (tcol.unique or target.primary_key == [column]):
                    issues.append(LintIssue(rel, where, f"relationship target {table}.{column} is not a unique key"))
                if tcol.logical_type != col.logical_type:
                    issues.append(LintIssue(rel, where, f"type {col.logical_type} differs from {table}.{column}'s"))
    for domain, variants in domains.items():
        if len(variants) > 1:
            places = "; ".join(", ".join(v) for v in variants.values())
            issues.append(LintIssue("contracts", f"valueDomain {domain}", f"enums differ between: {places}"))
    try:
        registry.source_tables()
    except ContractError as exc:
        issues.append(LintIssue("contracts", "relationships", str(exc)))
    for role in STREAM_ROLES:
        try:
            registry.topic(role)
        except ContractError as exc:
            issues.append(LintIssue("contracts", "streamRole", str(exc)))
    try:
        registry.archive_of(registry.topic("raw").physical_name)
    except ContractError as exc:
        issues.append(LintIssue("contracts", "archiveOf", str(exc)))
    for ds in registry.topics():
        if ds.custom_property("cassandraPartitionKey") and not ds.custom_property("cassandraKeyspace"):
            issues.append(LintIssue(str(ds.path.relative_to(root.parent)), ds.name,
                                    "a served topic needs a cassandraKeyspace custom property"))
    try:
        registry.keyspace  # noqa: B018 - raises when the served topics disagree
    except ContractError as exc:
        issues.append(LintIssue("contracts", "cassandraKeyspace", str(exc)))
    return issues
