"""Run by datacontract-cli's own venv (not the project's): lint or test each contract file given, print one JSON
object per check (file, check, field, result, reason). Only the standard library and datacontract are imported.

    python datacontract_runner.py lint FILE...
    python datacontract_runner.py test FILE...   # against each file's first server
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from datacontract.data_contract import DataContract

    mode, files = argv[0], argv[1:]
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
