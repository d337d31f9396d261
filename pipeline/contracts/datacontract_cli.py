"""The contracts checked by the field's own tool, datacontract-cli: ``lint`` (the ODCS JSON Schema and its own
rules) on every contract, and ``test`` (schema and quality checks) against the tables loaded into PostgreSQL.

The tool runs in a venv of its own (its pins clash with the project's), made once from
``requirements/datacontract.txt``; the project's stricter lint (``olist contracts lint``) runs as well. Contracts
name no server: for ``test`` each is copied with a ``servers`` entry for the running database, and the tool reads
the credentials from its own ``DATACONTRACT_POSTGRES_*`` variables, never from the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.contracts.registry import CONTRACTS_DIR, contract_files
from pipeline.settings import PROJECT_ROOT, Settings, cache_root

REQUIREMENTS = PROJECT_ROOT / "requirements" / "datacontract.txt"
RUNNER = Path(__file__).with_name("datacontract_runner.py")
# A relationship to another contract's table: the tool checks one file at a time and says it cannot (the
# project's lint checks every cross-reference, and dbt's relationships tests the data).
ACROSS_CONTRACTS = "the contract has no schema"


@dataclass(frozen=True)
class ToolCheck:
    file: str
    check: str
    field: str
    result: str  # passed | warning | failed | error
    reason: str

    @property
    def across_contracts(self) -> bool:
        return self.result == "warning" and ACROSS_CONTRACTS in self.reason


@dataclass
class ToolReport:
    mode: str
    files: int
    checks: list[ToolCheck]

    @property
    def problems(self) -> list[ToolCheck]:
        """Checks that did not pass, but for the relationships the tool cannot see across files."""
        return [c for c in self.checks if c.result != "passed" and not c.across_contracts]

    @property
    def passed(self) -> int:
        return sum(c.result == "passed" for c in self.checks)


def tool_python() -> Path:
    from emulation.venvs import ensure_venv

    return ensure_venv("datacontract", REQUIREMENTS, base=cache_root(),
                       check="import datacontract.data_contract")


def _run(mode: str, files: list[Path], env: dict[str, str] | None = None, timeout: float = 900) -> ToolReport:
    proc = subprocess.run([str(tool_python()), str(RUNNER), mode, *map(str, files)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"datacontract {mode} exited {proc.returncode}:\n{tail}")
    checks = [ToolCheck(**json.loads(line)) for line in proc.stdout.splitlines() if line.startswith("{")]
    return ToolReport(mode, len(files), checks)


def lint(root: Path = CONTRACTS_DIR) -> ToolReport:
    """``datacontract lint`` on every contract."""
    return _run("lint", contract_files(root))


def check_postgres(settings: Settings, schema: str | None = None, root: Path = CONTRACTS_DIR) -> ToolReport:
    """``datacontract test`` of every source-table contract against the running PostgreSQL (``schema``: the
    settings' by default), as the pipeline's role."""
    from emulation.postgres import PostgresService

    pg = PostgresService(settings)
    ep = pg.endpoint()
    if ep is None or not pg.available():
        raise RuntimeError("postgres is not running: start it with `olist up postgres`")
    server = {"server": "local", "type": "postgres", "host": ep.host, "port": ep.port,
              "database": ep.extra["dbname"], "schema": schema or settings.pg_schema}
    with tempfile.TemporaryDirectory(prefix="olist-datacontract-") as tmp:
        bound = []
        for path in contract_files(root):
            contract = yaml.safe_load(path.read_text(encoding="utf-8"))
            if path.parent.name != "olist":
                continue  # the source tables only: not the topics, the archive or the ops tables
            copy = Path(tmp) / path.name
            copy.write_text(yaml.safe_dump({**contract, "servers": [server]}, sort_keys=False), encoding="utf-8")
            bound.append(copy)
        credentials = {"DATACONTRACT_POSTGRES_USERNAME": ep.extra["user"],
                       "DATACONTRACT_POSTGRES_PASSWORD": ep.extra["password"]}
        return _run("test", bound, credentials)
