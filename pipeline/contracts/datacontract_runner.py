"""Run by datacontract-cli's own venv (not the project's): lint or test each contract file given, print one JSON
object per check (file, check, field, result, reason). Only the standard library, datacontract and (for ``test``)
its DuckDB are imported.

    python datacontract_runner.py lint FILE...
    python datacontract_runner.py test FILE...   # against each file's first server
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# DuckDB extensions the tool loads for an s3 server, shipped by the venv's duckdb-extension-* wheels.
BUNDLED_EXTENSIONS = ("httpfs", "aws")


def install_bundled_extensions() -> None:
    """Install the wheels' DuckDB extensions into DuckDB's extension folder, so the tool loads them with no download.

    datacontract-cli 1.2.8 looks in the wheel for ``NAME.duckdb_extension.gz``, but the 1.5 wheels ship the file
    uncompressed; the tool then falls back to ``INSTALL NAME`` from the internet, which fails offline. Once
    installed from the local file, the tool's ``INSTALL`` finds it there and downloads nothing."""
    import importlib

    try:
        import duckdb
    except ImportError:
        return  # a venv without the file servers
    con = duckdb.connect()
    version = con.sql("PRAGMA version").fetchone()[0]
    installed = {name for name, ok in con.sql("SELECT extension_name, installed FROM duckdb_extensions()").fetchall()
                 if ok}
    for name in BUNDLED_EXTENSIONS:
        if name in installed:
            continue
        try:
            module = importlib.import_module(f"duckdb_extension_{name}")
        except ImportError:
            continue
        shipped = Path(module.__file__).parent / "extensions" / version / f"{name}.duckdb_extension"
        if shipped.exists():
            con.install_extension(str(shipped))
    con.close()


def main(argv: list[str]) -> int:
    from datacontract.data_contract import DataContract

    mode, files = argv[0], argv[1:]
    if mode == "test":
        install_bundled_extensions()
    for path in files:
        contract = DataContract(data_contract_file=path)
        run = contract.lint() if mode == "lint" else contract.test()
        for check in run.checks:
            print(json.dumps({"file": path, "check": check.name, "field": check.field or "",
                              "result": str(getattr(check.result, "value", check.result)),
                              "reason": check.reason or ""}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
