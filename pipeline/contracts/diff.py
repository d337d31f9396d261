"""`olist contracts diff REF`: breaking changes between the contracts at a git ref and now."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

from pipeline.contracts.registry import CONTRACTS_DIR, Column, ContractError, Registry, load_registry

INT_WIDTH = {"smallint": 1, "integer": 2, "int": 2, "bigint": 3}
LOGICAL_WIDENING = {("integer", "number")}


class Change(NamedTuple):
    """One difference between two versions of the contracts; a breaking one fails `olist contracts diff` unless
    its contract's major version went up with it (``announced``: consumers were told)."""

    where: str
    message: str
    breaking: bool
    announced: str = ""  # "version 1.0.0 -> 2.0.0" when the contract's major version rose

    @property
    def fails(self) -> bool:
        return self.breaking and not self.announced

    def __str__(self) -> str:
        verdict = "BREAKING" if self.breaking else "compatible"
        note = f" (announced: {self.announced})" if self.announced else ""
        return f"{verdict}: {self.where}: {self.message}{note}"


def _major(version: str) -> int | None:
    head = version.split(".", 1)[0].lstrip("v")
    return int(head) if head.isdigit() else None


def registry_at_ref(ref: str, repo: Path = CONTRACTS_DIR.parent) -> Registry:
    """The contracts as they stood at a git ref, read with ``git show``."""
    listing = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "--name-only", ref, "--", "contracts"],
                             capture_output=True, text=True)
    if listing.returncode != 0:
        why = listing.stderr.strip().splitlines()[0] if listing.stderr.strip() else "unknown"
        raise ContractError(f"git ref {ref!r}: {why}")
    tmp = Path(tempfile.mkdtemp(prefix="olist-contracts-")) / "contracts"
    for name in listing.stdout.split():
        if not name.endswith(".odcs.yaml"):
            continue
        blob = subprocess.run(["git", "-C", str(repo), "show", f"{ref}:{name}"], capture_output=True, check=True)
        target = tmp / Path(name).relative_to("contracts")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob.stdout)
    return load_registry(tmp)


def _narrowed_physical(old: str, new: str) -> bool:
    old, new = old.lower().strip(), new.lower().strip()
    if old == new:
        return False
    size = re.compile(r"^(varchar|character varying|char|numeric|decimal)\((\d+)(?:,\s*(\d+))?\)$")
    mo, mn = size.match(old), size.match(new)
    if mo and mn and mo.group(1) == mn.group(1):
        p_old, p_new = int(mo.group(2)), int(mn.group(2))
        s_old, s_new = int(mo.group(3) or 0), int(mn.group(3) or 0)
        return p_new < p_old or s_new < s_old or (p_new - s_new) < (p_old - s_old)
    if mo and new == "text" and mo.group(1) in ("varchar", "character varying", "char"):
        return False
    if old in INT_WIDTH and new in INT_WIDTH:
        return INT_WIDTH[new] < INT_WIDTH[old]
    return not (old in INT_WIDTH and new.startswith(("numeric", "decimal", "bigint")))


def _bound_narrowed(old: object, new: object, lower: bool) -> bool:
    if new is None:
        return False
    if old is None:
        return True
    if isinstance(old, int | float) and isinstance(new, int | float):
        return new > old if lower else new < old
    return str(new) > str(old) if lower else str(new) < str(old)


def compare_columns(where: str, old: Column, new: Column) -> list[Change]:
    changes = []
    if old.logical_type != new.logical_type:
        widening = (old.logical_type, new.logical_type) in LOGICAL_WIDENING
        changes.append(Change(where, f"logical type {old.logical_type} -> {new.logical_type}", not widening))
    if old.physical_type != new.physical_type:
        narrowed = _narrowed_physical(old.physical_type, new.physical_type)
        changes.append(Change(where, f"physical type {old.physical_type} -> {new.physical_type}"
                              + (" narrows" if narrowed else " widens"), narrowed))
    if new.required and not old.required:
        changes.append(Change(where, "became required", True))
    if old.required and not new.required:
        changes.append(Change(where, "became optional", False))
    if old.enum is not None and new.enum is not None:
        removed = [v for v in old.enum if v not in new.enum]
        added = [v for v in new.enum if v not in old.enum]
        if removed:
            changes.append(Change(where, f"enum values removed: {removed}", True))
        if added:
            changes.append(Change(where, f"enum values added: {added}", False))
    elif new.enum is not None:
        changes.append(Change(where, "enum added (values now restricted)", True))
    if _bound_narrowed(old.minimum, new.minimum, lower=True):
        changes.append(Change(where, f"minimum {old.minimum} -> {new.minimum}", True))
    if _bound_narrowed(old.maximum, new.maximum, lower=False):
        changes.append(Change(where, f"maximum {old.maximum} -> {new.maximum}", True))
    if new.pattern and new.pattern != old.pattern:
        changes.append(Change(where, f"pattern {old.pattern} -> {new.pattern}", True))
    if old.primary_key_position != new.primary_key_position:
        changes.append(Change(where, "primary key changed", True))
    return changes


def diff(old: Registry, new: Registry) -> list[Change]:
    """Changes from ``old`` to ``new``; ``breaking`` marks what breaks a consumer or producer."""
    changes: list[Change] = []
    new_by_name = {d.name: d for d in new.datasets}
    old_by_name = {d.name: d for d in old.datasets}
    for name, old_ds in old_by_name.items():
        new_ds = new_by_name.get(name)
        if new_ds is None:
            changes.append(Change(name, "dataset removed", True))
            continue
        found: list[Change] = []
        for col in old_ds.columns:
            if col.name not in new_ds.column_names:
                found.append(Change(f"{name}.{col.name}", "column removed or renamed", True))
            else:
                found.extend(compare_columns(f"{name}.{col.name}", col, new_ds.column(col.name)))
        for col in new_ds.columns:
            if col.name not in old_ds.column_names:
                found.append(Change(f"{name}.{col.name}", "new required column" if col.required
                                    else "new optional column", col.required))
        old_major, new_major = _major(old_ds.version), _major(new_ds.version)
        if old_major is not None and new_major is not None and new_major > old_major:
            bump = f"version {old_ds.version} -> {new_ds.version}"
            found = [c._replace(announced=bump) if c.breaking else c for c in found]
        changes.extend(found)
    for name in new_by_name.keys() - old_by_name.keys():
        changes.append(Change(name, "dataset added", False))
    return changes
