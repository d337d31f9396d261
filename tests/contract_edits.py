"""Editing contracts as a user does in a test: on a copy of contracts/, one schema object at a time, the contract's
minor version raised with each edit."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import yaml

from pipeline.contracts.registry import CONTRACTS_DIR


def copied_contracts(tmp_path: Path) -> Path:
    """A copy of contracts/ (without its generated artifacts) under ``tmp_path``."""
    root = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, root, ignore=shutil.ignore_patterns("generated"))
    return root


def edit_contract(path: Path, edit: Callable[[dict], None]) -> None:
    """Apply ``edit`` to the contract's (first) schema object and raise its minor version."""
    doc = yaml.safe_load(path.read_text())
    major, minor, _ = doc["version"].split(".")
    doc["version"] = f"{major}.{int(minor) + 1}.0"
    edit(doc["schema"][0])
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def prop(props: list[dict], name: str) -> dict:
    return next(p for p in props if p["name"] == name)
