"""Reading and validating source files by contract, without a database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.batch.load.reader import LoadError, read_source
from pipeline.batch.load.validate import validate
from pipeline.settings import PROJECT_ROOT
from tests.fixtures.tiny import C1, FILES, O1, ROWS


def in_a_fresh_process(script: str, tmp_path: Path) -> str:
    """What ``script`` prints, run by a new interpreter with the tiny files' folder as its argument (no other test
    has touched its state); it must exit 0 and print nothing on stderr."""
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "tiny")], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-2000:]
    return proc.stdout.strip()


def _validated(registry, folder: Path, table: str, parents=None):
    ds = registry.dataset(table)
    return validate(read_source(folder / ds.source_file, ds), ds, parents or {})


@pytest.mark.parametrize("table", sorted(ROWS))
def test_tiny_files_are_all_valid(registry, tiny_dir, table):
    result = _validated(registry, tiny_dir, table)
    assert result.bad == []
    assert result.table.num_rows == ROWS[table]
    assert result.table.column_names == registry.dataset(table).column_names


def test_multiline_review_keeps_text_and_line_numbers(registry, tiny_dir):
    ds = registry.dataset("order_reviews")
    source = read_source(tiny_dir / ds.source_file, ds)
    assert source.lines.tolist() == [2, 3]
    assert source.table.column("review_comment_message")[1].as_py() == 'Produto "ruim",\r\nchegou quebrado 😡'
    assert source.table.column("review_comment_title")[1].as_py() == "Não, recomendo"


def test_empty_optional_values_become_null(registry, tiny_dir):
    result = _validated(registry, tiny_dir, "orders")
    assert result.table.column("order_approved_at").to_pylist()[1] is None


BAD_ORDERS = (
    "{header}"
    f'{O1},"{C1}",delivered,2017-10-02 10:56:33,,,,2017-10-18 00:00:00\n'  # line 2: good
    f'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1,"{C1}",delivered,2017-10-02 10:56:33,,,2017-10-18 00:00:00\n'  # 3: 7 fields
    f'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2,"{C1}",shipd,2017-10-02 10:56:33,,,,2017-10-18 00:00:00\n'  # 4: enum
    f'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa3,"{C1}",delivered,2018-02-30 10:00:00,,,,2017-10-18 00:00:00\n'  # 5: bad date
    f'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa4,"ffffffffffffffffffffffffffffffff",shipped,2017-10-02 10:56:33,,,,'
    "2017-10-18 00:00:00\n"  # 6: orphan customer
    f'{O1},"{C1}",delivered,2017-10-02 10:56:33,,,,2017-10-18 00:00:00\n'  # 7: duplicate key
    f'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa5,"{C1}",delivered,2017-10-02 10:56:33,,,,2017-10-18 00:00:00\n'  # 8: good
)


def test_bad_rows_are_quarantined_row_by_row_with_reasons(registry, tmp_path):
    header = FILES["olist_orders_dataset.csv"].splitlines(keepends=True)[0]
    path = tmp_path / "olist_orders_dataset.csv"
    data = BAD_ORDERS.format(header=header).encode() + (
        b'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa6,"' + C1.encode() + b'",deliv\xffred,2017-10-02 10:56:33,,,,'
        b"2017-10-18 00:00:00\n"  # line 9: broken UTF-8
    )
    path.write_bytes(data)
    import pyarrow as pa

    result = _validated(registry, tmp_path, "orders", {"customers.customer_id": pa.array([C1])})
    assert result.read == 8
    assert result.table.num_rows == 2
    reasons = {b.line: b.reason for b in result.bad}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 9]
    assert reasons[3] == "wrong column count: 7 fields, expected 8"
    assert reasons[4] == "order_status: 'shipd' is not one of the contract's values"
    assert reasons[5].startswith("order_purchase_timestamp: '2018-02-30 10:00:00' is not a timestamp")
    assert reasons[6] == "customer_id: 'ffffffffffffffffffffffffffffffff' not found in customers.customer_id"
    assert reasons[7] == f"duplicate key (order_id)=({O1}) first seen at line 2"
    assert reasons[9] == "order_status: not valid UTF-8"
    assert {b.column for b in result.bad if b.line in (4, 5, 6)} == {
        "order_status", "order_purchase_timestamp", "customer_id"}


def test_a_malformed_record_that_is_not_utf8_is_quarantined_and_nothing_is_printed(tmp_path):
    """Arrow decodes a malformed record as UTF-8 before its invalid-row handler sees it: a record with a field too
    many and a broken byte failed the whole file (and printed a traceback as an unraisable error). It is one
    quarantined record; the records around it load. Run in a fresh process to see what it prints."""
    script = r"""
import sys
from pathlib import Path
from pipeline.batch.load.reader import read_source
from pipeline.contracts import load_registry
from tests.fixtures.tiny import write_tiny
ds = load_registry().dataset("order_payments")
path = write_tiny(Path(sys.argv[1])) / ds.source_file
data = path.read_bytes()
first = data.index(b"\n") + 1
path.write_bytes(data[:first] + b'"' + b"b" * 32 + b'",1,credit_card,1,10.5,\xc3(a field too many\n' + data[first:])
source = read_source(path, ds)
print(source.table.num_rows, source.lines.tolist(), [(b.line, b.reason) for b in source.bad])
"""
    rows = ROWS["order_payments"]
    assert in_a_fresh_process(script, tmp_path) == (
        f"{rows} {list(range(3, 3 + rows))} [(2, 'wrong column count: 6 fields, expected 5')]")


def test_line_numbers_count_line_breaks_inside_values(registry, tmp_path):
    text = FILES["olist_order_reviews_dataset.csv"] + (
        f'"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","{O1}",7,,"três\r\nlinhas\r\naqui",2017-10-11 00:00:00,'
        "2017-10-12 03:43:48\r\n"
    )
    (tmp_path / "olist_order_reviews_dataset.csv").write_bytes(text.encode())
    result = _validated(registry, tmp_path, "order_reviews")
    assert [(b.line, b.reason) for b in result.bad] == [(5, "review_score: '7' is above the maximum 5")]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (f'{O1},1,credit_card,25,10.00\n', "payment_installments: '25' is above the maximum 24"),
        (f'{O1},1,credit_card,2,-1.00\n', "payment_value: '-1.00' is below the minimum 0"),
        (f'{O1},1,credit_card,2,abc\n', "payment_value: 'abc' is not a number"),
        (f'{O1},1,credit_card,2,12345678901.00\n', "payment_value: '12345678901.00' has more than 10 integer digits"),
        (f'{O1},x,credit_card,2,1.00\n', "payment_sequential: 'x' is not an integer"),
        (f'{O1},1,pix,2,1.00\n', "payment_type: 'pix' is not one of the contract's values"),
        (f'{O1},1,,2,1.00\n', "payment_type: required value is empty"),
        # a pattern rule's braces ({32}) are text in the reason, not a format field
        (f'{O1[:-1]}Z,1,credit_card,2,1.00\n', f"order_id: '{O1[:-1]}Z' does not match ^[0-9a-f]{{32}}$"),
        (f'{O1[:-1]}\x00,1,credit_card,2,1.00\n', f"order_id: '{O1[:-1]}\\x00' does not match ^[0-9a-f]{{32}}$; "
                                                  f"order_id: '{O1[:-1]}\\x00' holds a NUL byte, which text cannot"),
    ],
)
def test_each_contract_rule_names_field_and_value(registry, tmp_path, row, reason):
    header = FILES["olist_order_payments_dataset.csv"].splitlines(keepends=True)[0]
    (tmp_path / "olist_order_payments_dataset.csv").write_text(header + row)
    result = _validated(registry, tmp_path, "order_payments")
    assert [(b.line, b.reason) for b in result.bad] == [(2, reason)]
    assert result.table.num_rows == 0


def test_common_reexport_reads_like_the_original(registry, tiny_dir, tmp_path):
    """Minimal quoting, LF only, unquoted header, no BOM and another column order."""
    import csv

    for ds in registry.source_tables():
        with (tiny_dir / ds.source_file).open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
        names = list(reversed(ds.column_names))
        with (tmp_path / ds.source_file).open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, names, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        original = _validated(registry, tiny_dir, ds.name).table
        reexport = _validated(registry, tmp_path, ds.name).table
        assert reexport.equals(original), ds.name


def test_float_written_integers_are_accepted(registry, tiny_dir):
    path = tiny_dir / "olist_products_dataset.csv"
    path.write_text(path.read_text().replace(",40,268,4,500,19,8,13", ",40.0,268.0,4.0,500.0,19.0,8.0,13.0"))
    result = _validated(registry, tiny_dir, "products")
    assert result.bad == []
    assert result.table.column("product_weight_g").to_pylist() == ["500"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace('"order_status",', ""), "olist_orders_dataset.csv: missing column 'order_status'"),
        (lambda t: t.replace('"order_id",', '"order_id","order_note",', 1),
         "olist_orders_dataset.csv: unknown column 'order_note'"),
        (lambda t: t.replace('"customer_id",', '"order_id",', 1),
         "olist_orders_dataset.csv: column 'order_id' appears more than once in the header"),
        (lambda t: "", "olist_orders_dataset.csv: the file is empty (no header line)"),
    ],
)
def test_header_problems_are_one_clear_line(registry, tiny_dir, mutate, message):
    path = tiny_dir / "olist_orders_dataset.csv"
    path.write_text(mutate(path.read_text()))
    with pytest.raises(LoadError) as err:
        read_source(path, registry.dataset("orders"))
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_a_huge_field_in_the_header_is_one_short_line(tmp_path):
    """Python's CSV reader refuses fields over 128 KiB unless told otherwise; a fresh process (as `olist load` is)
    crashed on a header holding one. Run apart from every other test, which may have raised the limit already."""
    script = r"""
import sys
import subprocess
import sys
from pathlib import Path
from pipeline.batch.load.reader import LoadError, read_source
from pipeline.contracts import load_registry
from tests.fixtures.tiny import write_tiny
path = write_tiny(Path(sys.argv[1])) / "olist_orders_dataset.csv"
data = path.read_bytes()
end = data.index(b"\n") - data[:data.index(b"\n")].endswith(b"\r")
path.write_bytes(data[:end] + b',"' + b"9" * 200_000 + b'"' + data[end:])  # a 200,000-character column name
try:
    read_source(path, load_registry().dataset("orders"))
except LoadError as exc:
    print(exc)
"""
    message = in_a_fresh_process(script, tmp_path)
    assert message.startswith("olist_orders_dataset.csv: unknown column '"), message
    assert "\n" not in message and len(message) < 200 and "(200,0" in message, message


def test_missing_file_names_it(registry, tmp_path):
    with pytest.raises(LoadError, match=r"olist_orders_dataset.csv: missing file for table orders"):
        read_source(tmp_path / "olist_orders_dataset.csv", registry.dataset("orders"))


def test_csv_bytes_survive_empty_leading_chunks():
    import pyarrow as pa

    from pipeline.batch.load.reader import to_csv_bytes

    col = pa.chunked_array([pa.array([], pa.string()), pa.array(["a,b", None, 'q"x'] * 20000)])
    data = to_csv_bytes(pa.table({"c": col}))
    assert data.startswith(b'"a,b"\n\n"q""x"\n')
    assert data.count(b"\n") == 60000 and b"\x00" not in data


def test_a_nul_byte_in_free_text_is_refused_by_the_row_not_by_copy(registry, tmp_path):
    """PostgreSQL's text cannot hold NUL: a review whose comment holds one is quarantined with that reason (the
    fuzzer found COPY failing the whole file on it), and the other review loads."""
    text = FILES["olist_order_reviews_dataset.csv"].replace("chegou quebrado", "chegou\x00quebrado")
    (tmp_path / "olist_order_reviews_dataset.csv").write_text(text)
    result = _validated(registry, tmp_path, "order_reviews")
    assert [b.column for b in result.bad] == ["review_comment_message"]
    assert "holds a NUL byte" in result.bad[0].reason and result.table.num_rows == 1


def test_a_date_column_without_a_format_is_iso_and_a_bad_day_is_named(tmp_path):
    """A tenth table's contract may hold a plain date (the marketing funnel's first_contact_date): ISO, no format
    written, a real day only."""
    import textwrap

    import pyarrow as pa

    from pipeline.batch.load.validate import column_checks
    from pipeline.contracts import load_registry

    root = tmp_path / "contracts" / "olist"
    root.mkdir(parents=True)
    (root / "leads.odcs.yaml").write_text(textwrap.dedent("""\
        apiVersion: v3.2.0
        kind: DataContract
        id: olist.leads
        name: leads
        version: 1.0.0
        status: active
        schema:
          - name: leads
            physicalName: leads
            physicalType: table
            properties:
              - {name: lead_id, logicalType: string, physicalType: varchar(32), required: true, primaryKey: true,
                 primaryKeyPosition: 1}
              - {name: first_contact_date, logicalType: date, physicalType: date, required: true}
        """))
    col = load_registry(tmp_path / "contracts").dataset("leads").column("first_contact_date")
    assert col.timestamp_format == "yyyy-MM-dd"
    values = pa.chunked_array([["2018-02-11", "2018-02-30", "2018-02-11 10:00:00", "11/02/2018"]])
    bad = [c for c in column_checks(col, values) if "is not a date (yyyy-MM-dd)" in c.reason]
    assert [bool(x) for x in bad[0].failing] == [False, True, True, True]
