"""A mutation fuzzer for the loader's read and validation, over files in the real Kaggle format (the generator's):
byte flips, NUL and control bytes, broken UTF-8, stray and unbalanced quotes, delimiter and line-end injection,
truncation mid-row and mid-field, huge fields, and pattern / enum / range violations in any column.

For every example the loader either refuses the file with one clear line naming it (a file-level fault), or
accounts for every record: read == valid + quarantined, and each quarantined record names its line, its reason
and, for a value fault, its column. It never raises anything else. `nox -s fuzz` runs a longer profile.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.batch.generator import generate
from pipeline.batch.load.reader import LoadError, read_source
from pipeline.batch.load.validate import validate
from pipeline.contracts import load_registry

EXAMPLES = int(os.environ.get("OLIST_FUZZ_EXAMPLES", "150"))
TABLES = ("order_payments", "customers", "orders", "order_reviews", "products")


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("originals")
    generate(scale=0.002, seed=5, out_dir=out)
    registry = load_registry()
    return {t: (out / registry.dataset(t).source_file).read_bytes() for t in TABLES}


def _violation(rng: random.Random, text: str, table: str) -> str:
    """Replace one field of a random data line with a value breaking its column's contract."""
    lines = text.split("\n")
    if len(lines) < 3:
        return text
    i = rng.randrange(1, len(lines) - 1)
    fields = lines[i].split(",")
    j = rng.randrange(len(fields))
    fields[j] = rng.choice(["Z" * 32, "-7", "pix", "99999999999999", "2018-02-30 10:00:00", "", "XX", "1e999",
                            '"' + "x" * 70_000 + '"', "\x00", "abc"])
    lines[i] = ",".join(fields)
    return "\n".join(lines)


MUTATIONS = ("flip", "nul", "control", "utf8", "quote", "delimiter", "line_end", "truncate", "huge", "violation")


def mutate(data: bytes, table: str, ops: list[tuple[str, int]]) -> bytes:
    for op, seed in ops:
        rng = random.Random(seed)
        if not data:
            break
        at = rng.randrange(len(data))
        if op == "flip":
            data = data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:]
        elif op == "nul":
            data = data[:at] + b"\x00" + data[at:]
        elif op == "control":
            data = data[:at] + bytes([rng.choice([1, 7, 8, 11, 12, 27, 127])]) + data[at:]
        elif op == "utf8":
            data = data[:at] + rng.choice([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80"]) + data[at:]
        elif op == "quote":
            data = data[:at] + b'"' + data[at:]
        elif op == "delimiter":
            data = data[:at] + b"," + data[at:]
        elif op == "line_end":
            data = data[:at] + rng.choice([b"\n", b"\r\n", b"\r"]) + data[at:]
        elif op == "truncate":
            data = data[:at]
        elif op == "huge":
            data = data[:at] + b"9" * rng.choice([5_000, 200_000]) + data[at:]
        else:
            data = _violation(rng, data.decode("utf-8", "replace"), table).encode()
    return data


# an error Arrow reports as unraisable (printed on stderr by a CLI run) fails the example
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.sampled_from(TABLES),
       ops=st.lists(st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 2**31)), min_size=1, max_size=4))
def test_no_input_crashes_the_loader_and_every_record_is_accounted_for(originals, tmp_path_factory, table, ops):
    ds = load_registry().dataset(table)
    path = Path(tmp_path_factory.mktemp("fuzz")) / (ds.source_file or table)
    path.write_bytes(mutate(originals[table], table, ops))
    try:
        source = read_source(path, ds)
    except LoadError as exc:  # a file-level fault: one line, naming the file
        message = str(exc)
        assert "\n" not in message and path.name in message, message
        return
    result = validate(source, ds, {})
    assert result.read == result.table.num_rows + len(result.bad), "every record read is loaded or quarantined"
    for bad in result.bad:
        assert bad.line >= 2 and bad.reason and bad.record is not None, bad
        if bad.column is not None:
            assert bad.reason.startswith(f"{bad.column}: ") or f"{bad.column}: " in bad.reason, bad
