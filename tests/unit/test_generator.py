"""The data generator: files, format, keys, counts, quirks and distributions of small samples."""

from __future__ import annotations

import collections
import csv
import hashlib
import re
from pathlib import Path

import pytest

from pipeline.batch.generator import FULL_ROWS, GenerateResult, generate
from pipeline.contracts.registry import load_registry

SCALE = 0.02
SEED = 42
BRAZIL = (-33.75, 5.27, -73.99, -34.79)  # lat min/max, lng min/max
HEX32 = re.compile(r"^[0-9a-f]{32}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
MONEY = re.compile(r"^\d+\.\d{2}$")


class Sample:
    """A generated folder, its result and every table read back with Python's csv module."""

    def __init__(self, out: Path, scale: float, seed: int, progress: list | None = None):
        calls: list[tuple[str, int, int]] = [] if progress is None else progress
        self.dir = out
        self.result: GenerateResult = generate(scale, seed, out, progress=lambda *a: calls.append(a))
        self.progress = calls
        self.datasets = {d.name: d for d in load_registry().source_tables()}
        self.tables: dict[str, list[dict[str, str]]] = {}
        for name, ds in self.datasets.items():
            with open(out / ds.source_file, encoding="utf-8-sig", newline="") as fh:
                self.tables[name] = list(csv.DictReader(fh))

    def __getitem__(self, name: str) -> list[dict[str, str]]:
        return self.tables[name]

    def raw(self, name: str) -> bytes:
        return (self.dir / self.datasets[name].source_file).read_bytes()


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Sample:
    return Sample(tmp_path_factory.mktemp("gen"), SCALE, SEED)


@pytest.fixture(scope="module")
def smallest(tmp_path_factory) -> Sample:
    """The smallest scale at which every rare quirk must still appear."""
    return Sample(tmp_path_factory.mktemp("gen001"), 0.01, 7)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.csv"))}


# --- files and text format -------------------------------------------------------------------------


def test_writes_the_nine_contract_files(sample):
    names = {ds.source_file for ds in sample.datasets.values()}
    assert len(names) == 9
    assert {p.name for p in sample.dir.iterdir()} == names
    for name, stats in sample.result.files.items():
        assert stats.path == sample.dir / sample.datasets[name].source_file
        assert stats.bytes == stats.path.stat().st_size
        assert stats.rows == len(sample[name])
    assert sample.result.total_rows == sum(len(t) for t in sample.tables.values())
    assert sample.result.elapsed_seconds > 0


def test_header_lines_are_exactly_the_originals(sample):
    for name, ds in sample.datasets.items():
        fmt = ds.csv_format
        names = [f'"{c}"' if fmt.quote_header else c for c in ds.column_names]
        expected = ("\ufeff" if fmt.byte_order_mark else "") + ",".join(names) + fmt.line_terminator
        assert sample.raw(name).decode("utf-8").startswith(expected), name
    # Spelled out from the data set's description, typos included.
    assert sample.raw("products").startswith(
        b'"product_id","product_category_name","product_name_lenght","product_description_lenght",'
        b'"product_photos_qty","product_weight_g","product_length_cm","product_height_cm","product_width_cm"\n'
    )
    assert sample.raw("product_category_name_translation").startswith(
        b"\xef\xbb\xbfproduct_category_name,product_category_name_english\r\n"
    )


def test_line_terminators_and_bom(sample):
    for name, ds in sample.datasets.items():
        raw = sample.raw(name)
        assert raw.startswith(b"\xef\xbb\xbf") == ds.csv_format.byte_order_mark, name
        if ds.csv_format.line_terminator == "\r\n":
            assert raw.count(b"\n") == raw.count(b"\r\n"), name
        else:
            assert b"\r" not in raw, name
    assert sample.raw("order_reviews").count(b"\r\n") > len(sample["order_reviews"]) + 1  # multi-line texts
    assert b'"' not in sample.raw("product_category_name_translation")


def _raw_records(text: str) -> list[list[str]]:
    """Split CSV text into records of raw fields, quotes kept, honouring quoted line breaks."""
    records: list[list[str]] = []
    fields: list[str] = []
    start = i = 0
    while i < len(text):
        ch = text[i]
        if ch == '"' and i == start:
            i = text.index('"', i + 1)
            while text[i + 1 : i + 2] == '"':
                i = text.index('"', i + 2)
            i += 1
        elif ch == ",":
            fields.append(text[start:i])
            i = start = i + 1
        elif ch in "\r\n":
            fields.append(text[start:i])
            records.append(fields)
            fields = []
            i = start = i + (2 if text[i : i + 2] == "\r\n" else 1)
        else:
            i += 1
    return records


def test_values_are_quoted_exactly_when_the_format_says(sample):
    """Text starting with a digit is quoted (ids, zips); numbers, timestamps and other text are bare,
    except values holding a comma, quote or line break; review ids are always quoted."""
    for name, ds in sample.datasets.items():
        text = sample.raw(name).decode("utf-8-sig")
        if name != "order_reviews":  # no multi-line values elsewhere: the first lines are enough
            text = text[: text.rfind("\n", 0, 60_000) + 1]
        records = _raw_records(text)[1:]
        assert len(records) >= min(300, len(sample[name])), name
        fmt = ds.csv_format
        for record in records:
            assert len(record) == len(ds.columns), (name, record)
            for field, col in zip(record, ds.columns, strict=True):
                quoted = field.startswith('"')
                value = field[1:-1].replace('""', '"') if quoted else field
                special = any(ch in value for ch in ',"\r\n')
                policy = col.csv_quote or fmt.quote
                leading = policy == "leadingDigit" and col.logical_type == "string" and value[:1].isdigit()
                needs = bool(value) and (policy == "always" or special or leading)
                assert quoted == needs, (name, col.name, field)


def test_reviews_carry_bare_and_quoted_text(sample):
    text = sample.raw("order_reviews").decode("utf-8")
    assert not re.search(r"(?m)^[0-9a-f]{32},", text)  # an id is never bare
    assert re.search(r'(?m)^"[0-9a-f]{32}","[0-9a-f]{32}",[1-5],[^",\r\n]+,', text)  # a bare title
    assert re.search(r',"[^"]*,[^"]*",\d{4}-', text)  # a message quoted for its comma
    assert re.search(r',"[^"]*\r\n[^"]*",\d{4}-', text)  # a message on several lines


def test_value_shapes(sample):
    for name, ds in sample.datasets.items():
        for col in ds.columns:
            values = [r[col.name] for r in sample[name] if r[col.name] != ""]
            if col.pattern == "^[0-9a-f]{32}$":
                assert all(HEX32.match(v) for v in values), (name, col.name)
            if col.pattern == "^[0-9]{5}$":
                assert all(re.fullmatch(r"\d{5}", v) for v in values), (name, col.name)
            if col.logical_type == "timestamp":
                assert all(TIMESTAMP.match(v) for v in values), (name, col.name)
            if col.physical_type.startswith("numeric"):
                assert all(MONEY.match(v) for v in values), (name, col.name)
            if col.logical_type == "integer":
                assert all(re.fullmatch(r"\d+", v) for v in values), (name, col.name)
            if col.enum:
                assert set(values) <= set(col.enum), (name, col.name)
            if col.minimum is not None and col.logical_type in ("integer", "number"):
                assert min(float(v) for v in values) >= float(col.minimum), (name, col.name)
            if col.maximum is not None and col.logical_type in ("integer", "number"):
                assert max(float(v) for v in values) <= float(col.maximum), (name, col.name)


# --- counts and keys -------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["sample", "smallest"])
def test_row_counts_follow_the_scale(fixture, request):
    s: Sample = request.getfixturevalue(fixture)
    for name, rows in s.tables.items():
        full = FULL_ROWS[name]
        expected = full if name == "product_category_name_translation" else round(full * s.result.scale)
        assert len(rows) == expected, name
    assert len(s["customers"]) == len(s["orders"])


def test_primary_keys_are_unique(sample):
    for name, ds in sample.datasets.items():
        key = ds.primary_key
        seen = collections.Counter(tuple(r[k] for k in key) for r in sample[name]) if key else {}
        assert all(c == 1 for c in seen.values()), (name, key)
    for name in ("customers", "sellers", "products"):
        ids = [r[sample.datasets[name].primary_key[0]] for r in sample[name]]
        assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(("table", "column"), [("order_items", "order_item_id"),
                                                ("order_payments", "payment_sequential")])
def test_positions_within_an_order_run_from_one(sample, table, column):
    per_order = collections.defaultdict(list)
    for r in sample[table]:
        per_order[r["order_id"]].append(int(r[column]))
    assert all(sorted(v) == list(range(1, len(v) + 1)) for v in per_order.values())


def test_every_foreign_key_resolves(sample):
    for name, ds in sample.datasets.items():
        for col in ds.columns:
            for parent, parent_col in col.references:
                keys = {r[parent_col] for r in sample[parent]}
                assert {r[col.name] for r in sample[name]} <= keys, (name, col.name)
    customers = [o["customer_id"] for o in sample["orders"]]
    assert sorted(customers) == sorted(c["customer_id"] for c in sample["customers"])  # one per order
    assert {i["seller_id"] for i in sample["order_items"]} == {s["seller_id"] for s in sample["sellers"]}
    assert {i["product_id"] for i in sample["order_items"]} == {p["product_id"] for p in sample["products"]}


def test_categories_are_translated_or_one_of_the_two_known_gaps(sample):
    translated = {r["product_category_name"] for r in sample["product_category_name_translation"]}
    assert len(translated) == 71
    used = {p["product_category_name"] for p in sample["products"]} - {""}
    assert used - translated == {"pc_gamer", "portateis_cozinha_e_preparadores_de_alimentos"}
    english = {r["product_category_name_english"] for r in sample["product_category_name_translation"]}
    assert {"fashio_female_clothing", "costruction_tools_garden", "home_confort"} <= english


# --- quirks --------------------------------------------------------------------------------------


def _quirks(s: Sample) -> dict[str, bool]:
    orders = {o["order_id"]: o for o in s["orders"]}
    pays, items, revs = s["order_payments"], s["order_items"], s["order_reviews"]
    prods, geo = s["products"], s["geolocation"]
    paid = {p["order_id"] for p in pays}
    with_items = {i["order_id"] for i in items}
    review_orders = collections.Counter(r["order_id"] for r in revs)
    review_ids = collections.defaultdict(set)
    for r in revs:
        review_ids[r["review_id"]].add(r["order_id"])
    messages = [r["review_comment_message"] for r in revs]
    geo_prefixes = {g["geolocation_zip_code_prefix"] for g in geo}
    lat_min, lat_max, lng_min, lng_max = BRAZIL
    return {
        "zero installments": any(p["payment_installments"] == "0" for p in pays),
        "not_defined payment": any(p["payment_type"] == "not_defined" for p in pays),
        "0.00 payment": any(p["payment_value"] == "0.00" for p in pays),
        "voucher split": any(int(p["payment_sequential"]) > 1 for p in pays),
        "delivered order without payment": [
            o["order_status"] for oid, o in orders.items() if oid not in paid
        ] == ["delivered"],
        "pc_gamer": any(p["product_category_name"] == "pc_gamer" for p in prods),
        "portateis": any(p["product_category_name"].startswith("portateis_cozinha") for p in prods),
        "null category with null lengths": any(
            p["product_category_name"] == p["product_name_lenght"] == p["product_photos_qty"] == ""
            for p in prods
        ),
        "0 g product": any(p["product_weight_g"] == "0" for p in prods),
        "null dimensions": any(p["product_weight_g"] == "" and p["product_width_cm"] == "" for p in prods),
        "point outside Brazil": any(
            not (lat_min <= float(g["geolocation_lat"]) <= lat_max)
            or not (lng_min <= float(g["geolocation_lng"]) <= lng_max)
            for g in geo
        ),
        "accented city variant": any(g["geolocation_city"] == "são paulo" for g in geo)
        and any(g["geolocation_city"] == "sao paulo" for g in geo),
        "duplicated geolocation rows": len({tuple(g.values()) for g in geo}) < len(geo),
        "repeated review id": any(len(v) > 1 for v in review_ids.values()),
        "order with several reviews": any(c > 1 for c in review_orders.values()),
        "order without items": any(oid not in with_items for oid in orders),
        "delivered order without delivery date": any(
            (o["order_status"], o["order_delivered_customer_date"]) == ("delivered", "")
            for o in orders.values()
        ),
        "multi-line review with CRLF": any("\r\n" in m for m in messages),
        "review with comma": any("," in m for m in messages),
        "review with quote": any('"' in m for m in messages),
        "review with emoji": any(any(ord(ch) > 0x1F000 for ch in m) for m in messages),
        "zip with leading zero": any(c["customer_zip_code_prefix"].startswith("0") for c in s["customers"])
        and any(g.startswith("0") for g in geo_prefixes),
        "customer zip without geolocation": any(
            c["customer_zip_code_prefix"] not in geo_prefixes for c in s["customers"]
        ),
        "seller zip without geolocation": any(
            x["seller_zip_code_prefix"] not in geo_prefixes for x in s["sellers"]
        ),
        "shipping limit in 2020": any(i["shipping_limit_date"].startswith("2020") for i in items),
        "repeat customer": len({c["customer_unique_id"] for c in s["customers"]}) < len(s["customers"]),
    }


@pytest.mark.parametrize("fixture", ["sample", "smallest"])
def test_every_rare_quirk_is_present(fixture, request):
    quirks = _quirks(request.getfixturevalue(fixture))
    assert [name for name, present in quirks.items() if not present] == []


def test_only_one_order_lacks_a_payment_and_it_was_delivered(smallest):
    paid = {p["order_id"] for p in smallest["order_payments"]}
    assert [o["order_status"] for o in smallest["orders"] if o["order_id"] not in paid] == ["delivered"]


# --- distributions -------------------------------------------------------------------------------
# Statuses, payment types and items per order are apportioned from the real counts, so at ~2,000
# orders they sit within a rounding step of the real shares: 1.5 points is generous. Scores and the
# text nulls are drawn at random: the tolerances are about 4 standard deviations of a share over
# ~2,000 rows (sd = sqrt(p(1-p)/n), e.g. 1.1 points for the 58% of fives).


def _share(rows, column, value) -> float:
    return sum(r[column] == value for r in rows) / len(rows) * 100


@pytest.mark.parametrize(("table", "column", "value", "real", "tolerance"), [
    ("orders", "order_status", "delivered", 97.0, 1.5),
    ("orders", "order_status", "shipped", 1.1, 1.0),
    ("order_payments", "payment_type", "credit_card", 73.9, 1.5),
    ("order_payments", "payment_type", "boleto", 19.0, 1.5),
    ("order_payments", "payment_type", "voucher", 5.6, 1.5),
    ("order_payments", "payment_type", "debit_card", 1.5, 1.0),
    ("order_reviews", "review_score", "5", 57.9, 4.5),
    ("order_reviews", "review_score", "4", 19.3, 3.5),
    ("order_reviews", "review_score", "1", 11.9, 3.0),
    ("order_reviews", "review_score", "3", 8.2, 2.5),
    ("order_reviews", "review_score", "2", 3.2, 1.6),
    ("order_reviews", "review_comment_title", "", 88.3, 3.0),
    ("order_reviews", "review_comment_message", "", 58.7, 4.5),
    ("customers", "customer_state", "SP", 42.0, 4.5),
    ("sellers", "seller_state", "SP", 59.7, 25.0),  # only ~60 sellers at this scale
])
def test_mixes_are_close_to_the_real_data(sample, table, column, value, real, tolerance):
    assert abs(_share(sample[table], column, value) - real) <= tolerance


def test_purchases_grow_over_time_within_the_real_range(sample):
    stamps = [o["order_purchase_timestamp"] for o in sample["orders"]]
    assert min(stamps) >= "2016-09-04" and max(stamps) <= "2018-10-17 23:59:59"
    years = collections.Counter(s[:4] for s in stamps)
    assert years["2016"] / len(stamps) < 0.01
    assert 0.40 < years["2017"] / len(stamps) < 0.50
    assert 0.49 < years["2018"] / len(stamps) < 0.59


def test_items_per_order_are_mostly_one(sample):
    per_order = collections.Counter(i["order_id"] for i in sample["order_items"])
    assert 0.86 < sum(c == 1 for c in per_order.values()) / len(per_order) < 0.94
    without = len(sample["orders"]) - len(per_order)
    assert abs(without - round(775 * SCALE)) <= 1


def test_prices_and_freight_look_real(sample):
    prices = sorted(float(i["price"]) for i in sample["order_items"])
    freight = sorted(float(i["freight_value"]) for i in sample["order_items"])
    assert 50 < prices[len(prices) // 2] < 100
    assert 10 < freight[len(freight) // 2] < 25
    assert max(prices) <= 6735


def test_installments_by_payment_type(sample):
    for p in sample["order_payments"]:
        if p["payment_type"] != "credit_card":
            assert p["payment_installments"] == "1"
    pays = sample["order_payments"]
    card = [int(p["payment_installments"]) for p in pays if p["payment_type"] == "credit_card"]
    assert max(card) <= 24 and len(set(card)) > 5


def test_payments_mostly_match_items(sample):
    due = collections.defaultdict(int)
    for i in sample["order_items"]:
        due[i["order_id"]] += round(float(i["price"]) * 100) + round(float(i["freight_value"]) * 100)
    paid = collections.defaultdict(int)
    for p in sample["order_payments"]:
        paid[p["order_id"]] += round(float(p["payment_value"]) * 100)
    matched = sum(paid[o] == d for o, d in due.items() if o in paid)
    assert 0.9 < matched / len(due) < 1.0


# --- timestamps ----------------------------------------------------------------------------------

LIFECYCLE = ["order_purchase_timestamp", "order_approved_at", "order_delivered_carrier_date",
             "order_delivered_customer_date"]


def test_lifecycle_timestamps_are_in_order(sample):
    for o in sample["orders"]:
        present = [o[c] for c in LIFECYCLE if o[c]]
        assert present == sorted(present), o
        assert o["order_estimated_delivery_date"] > o["order_purchase_timestamp"]
        assert o["order_estimated_delivery_date"].endswith("00:00:00")


def test_null_dates_follow_the_status(sample):
    by_status = collections.defaultdict(list)
    for o in sample["orders"]:
        by_status[o["order_status"]].append(o)
    for status in ("shipped", "invoiced", "processing", "unavailable", "created", "approved"):
        assert all(o["order_delivered_customer_date"] == "" for o in by_status[status]), status
    for status in ("invoiced", "processing", "unavailable", "created", "approved"):
        assert all(o["order_delivered_carrier_date"] == "" for o in by_status[status]), status
    assert all(o["order_approved_at"] == "" for o in by_status["created"])
    assert all(o["order_delivered_carrier_date"] for o in by_status["shipped"])
    delivered = [o for o in by_status["delivered"] if o["order_delivered_customer_date"]]
    late = sum(o["order_delivered_customer_date"] > o["order_estimated_delivery_date"] for o in delivered)
    assert 0.05 < late / len(delivered) < 0.11
    for column, real in [("order_approved_at", 0.16), ("order_delivered_carrier_date", 1.8),
                         ("order_delivered_customer_date", 3.0)]:
        assert abs(_share(sample["orders"], column, "") - real) < 1.0, column


def test_shipping_limit_and_reviews_follow_the_order(sample):
    orders = {o["order_id"]: o for o in sample["orders"]}
    for i in sample["order_items"]:
        assert i["shipping_limit_date"] > orders[i["order_id"]]["order_purchase_timestamp"]
    for r in sample["order_reviews"]:
        assert r["review_creation_date"].endswith(" 00:00:00")
        assert r["review_answer_timestamp"] >= r["review_creation_date"]
        assert r["review_creation_date"] > orders[r["order_id"]]["order_purchase_timestamp"]


# --- determinism and progress --------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(sample, tmp_path):
    again = generate(SCALE, SEED, tmp_path / "again")
    assert _digests(tmp_path / "again") == _digests(sample.dir)
    sizes = {n: f.bytes for n, f in sample.result.files.items()}
    assert {n: f.bytes for n, f in again.files.items()} == sizes
    generate(SCALE, SEED + 1, tmp_path / "other")
    same, other = _digests(sample.dir), _digests(tmp_path / "other")
    differ = {name for name in same if same[name] != other[name]}
    assert differ == set(same) - {"product_category_name_translation.csv"}


def test_progress_reports_every_table_to_its_end(sample):
    last = {}
    for table, done, total in sample.progress:
        assert 0 <= done <= total
        last[table] = (done, total)
    assert set(last) == set(sample.datasets)
    assert all(done == total == len(sample[t]) for t, (done, total) in last.items())


def test_scale_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        generate(0, SEED, tmp_path)
