"""The CSV text writer: quoting policies, line terminators, BOM, and read-back through Python's csv."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.batch.generator.csv_format import (
    CsvFormatError,
    column_policies,
    format_column,
    format_field,
    normalize_newlines,
    write_table,
)
from pipeline.contracts.registry import Column, CsvFormat

PIECES = [",", '"', "\r", "\n", "\r\n", "0", "9", " ", "😀", "ã", "a", "\x00", "\ufeff"]
TEXT = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=3)), max_size=8).map("".join),
)


def _table(width: int):
    return st.lists(st.lists(TEXT, min_size=width, max_size=width), min_size=1, max_size=6)


TABLES = st.integers(1, 4).flatmap(_table)


def _write(rows, fmt: CsvFormat, policy: str, **kw) -> tuple[bytes, list[list[str]]]:
    header = [f"c{i}" for i in range(len(rows[0]))]
    columns = [list(c) for c in zip(*rows, strict=True)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        stats = write_table(path, header, [columns], fmt, [policy] * len(header), **kw)
        raw = path.read_bytes()
    assert stats.bytes == len(raw)
    assert stats.rows == len(rows)
    with io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", newline="") as fh:
        back = list(csv.reader(fh))
    assert back[0] == header
    return raw, back[1:]


@pytest.mark.parametrize("policy", ["leadingDigit", "always", "minimal"])
@pytest.mark.parametrize("terminator", ["\n", "\r\n"])
@settings(max_examples=60, deadline=None)
@given(rows=TABLES, bom=st.booleans(), quote_header=st.booleans())
def test_any_text_reads_back_identically(policy, terminator, rows, bom, quote_header):
    fmt = CsvFormat(line_terminator=terminator, byte_order_mark=bom, quote_header=quote_header, quote=policy)
    raw, back = _write(rows, fmt, policy, newlines_as_terminator=False)
    assert back == [[v or "" for v in row] for row in rows]
    assert raw.startswith("\ufeff".encode()) == bom


@pytest.mark.parametrize("terminator", ["\n", "\r\n"])
@settings(max_examples=60, deadline=None)
@given(rows=TABLES)
def test_line_breaks_inside_values_follow_the_file(terminator, rows):
    fmt = CsvFormat(line_terminator=terminator, quote="minimal")
    raw, back = _write(rows, fmt, "minimal")
    assert back == [[normalize_newlines(v, terminator) or "" for v in row] for row in rows]
    if terminator == "\r\n":  # every line break in the file, inside values or not, is CRLF
        assert raw.count(b"\n") == raw.count(b"\r\n") == raw.count(b"\r")


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(2, 4).flatmap(_table))
def test_never_writes_safe_text_bare_and_refuses_the_rest(rows):
    fmt = CsvFormat(line_terminator="\r\n", byte_order_mark=True, quote_header=False, quote="never")
    unsafe = any(v and any(ch in v for ch in ',"\r\n') for row in rows for v in row)
    if unsafe:
        with pytest.raises(CsvFormatError, match="column 'c"):
            _write(rows, fmt, "never")
    else:
        raw, back = _write(rows, fmt, "never")
        assert back == [[v or "" for v in row] for row in rows]
        assert b'"' not in raw


def test_leading_digit_quotes_zip_prefixes_and_ids_but_not_words():
    assert format_field("09790", "leadingDigit") == '"09790"'
    digit_id, letter_id = "53cdb2fc8bc7dce0b6741e2150273451", "e481f51cbdc54678b7cc49136f2d6af7"
    assert format_field(digit_id, "leadingDigit") == f'"{digit_id}"'
    assert format_field("sao paulo", "leadingDigit") == "sao paulo"
    assert format_field(letter_id, "leadingDigit") == letter_id
    assert format_column(["09790", "sao paulo", None, ""], "leadingDigit") == ['"09790"', "sao paulo", "", ""]


def test_leading_digit_still_quotes_values_that_would_break_the_row():
    assert format_field("rio de janeiro, brasil", "leadingDigit") == '"rio de janeiro, brasil"'
    assert format_field('say "hi"', "leadingDigit") == '"say ""hi"""'
    assert format_field("two\nlines", "leadingDigit") == '"two\nlines"'


def test_minimal_and_always():
    assert format_field("plain", "minimal") == "plain"
    assert format_field("09790", "minimal") == "09790"
    assert format_field('a "b", c', "minimal") == '"a ""b"", c"'
    assert format_field("09790", "always") == '"09790"'
    assert format_field("", "always") == ""
    assert format_field(None, "always") == ""


def test_never_names_the_column_it_cannot_write():
    with pytest.raises(ValueError, match="seller_city"):
        format_column(["ok", "rio de janeiro, brasil"], "never", "seller_city")
    with pytest.raises(ValueError, match="review_comment_message"):
        format_field("a\nb", "never", "review_comment_message")


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="unknown quote policy"):
        format_field("x", "sometimes")


def test_crlf_file_writes_crlf_inside_multi_line_values(tmp_path):
    fmt = CsvFormat(line_terminator="\r\n", quote="minimal")
    batch = [["1", "2"], ["one\ntwo", "x"]]
    write_table(tmp_path / "r.csv", ["id", "msg"], [batch], fmt, ["always", "minimal"])
    assert (tmp_path / "r.csv").read_bytes() == b'"id","msg"\r\n"1","one\r\ntwo"\r\n"2",x\r\n'


def test_bom_and_unquoted_header(tmp_path):
    fmt = CsvFormat(line_terminator="\r\n", byte_order_mark=True, quote_header=False, quote="never")
    write_table(tmp_path / "t.csv", ["a", "b"], [[["pc"], ["computers"]]], fmt, ["never", "never"])
    assert (tmp_path / "t.csv").read_bytes() == b"\xef\xbb\xbfa,b\r\npc,computers\r\n"


def test_failed_write_leaves_no_file(tmp_path):
    fmt = CsvFormat(quote="never")
    with pytest.raises(CsvFormatError):
        write_table(tmp_path / "t.csv", ["a", "b"], [[["x"], ["y,z"]]], fmt, ["never", "never"])
    assert list(tmp_path.iterdir()) == []


def test_numbers_and_timestamps_stay_bare_under_leading_digit():
    def col(name, logical_type, csv_quote=None):
        return Column(name, logical_type, physical_type="", required=True, csv_quote=csv_quote)

    cols = [col("id", "string"), col("n", "integer"), col("at", "timestamp"), col("rid", "string", "always")]
    leading = column_policies(cols, CsvFormat(quote="leadingDigit"))
    assert leading == ["leadingDigit", "minimal", "minimal", "always"]
    assert column_policies(cols, CsvFormat(quote="minimal")) == ["minimal", "minimal", "minimal", "always"]
