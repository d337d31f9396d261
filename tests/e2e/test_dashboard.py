"""The dashboards in a real browser (Debian's Chromium driven by Playwright) on real data: the sample built
through the batch lane (generate, load, ingest, transform against the session's PostgreSQL and S3) and
payment windows written to a real Cassandra node. Every figure checked on screen is recomputed by an
independent SQL query against the DuckDB warehouse (or from the rows written to Cassandra).

Screenshots of every view go to ``$OLIST_SCREENSHOT_DIR`` (default ``.state/screenshots``)."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from emulation.dashboard import DashboardService
from emulation.resources import engine
from pipeline.contracts import stream_names
from pipeline.provision.cassandra import apply_schema
from pipeline.serving.dashboard.pages.live import REFRESH_MS
from pipeline.settings import PROJECT_ROOT, get_settings
from tests.conftest import running

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCHEMA, PREFIX = "e2e_dashboard", "bronze-dashboard"
SHOTS = Path(os.environ.get("OLIST_SCREENSHOT_DIR", PROJECT_ROOT / ".state" / "screenshots"))
NAMES = stream_names()
KEYSPACE = NAMES.keyspace
expect.set_options(timeout=20_000)  # the first render copies the warehouse and runs every query
# Dash's renderer keeps its state in window.store: no callback pending, and no graph still without its SVG.
IDLE = """() => window.store !== undefined && window.store.getState().isLoading === false
    && [...document.querySelectorAll('.js-plotly-plot')].every(g => g.querySelector('.main-svg'))"""


# -- data: the batch lane and Cassandra ---------------------------------------------------------------


@pytest.fixture(scope="module")
def env(postgres, s3, other_s3, test_settings, tmp_path_factory):
    """The batch lane run once through the CLI, in a schema and bronze prefix of its own, on the S3 emulator the
    demo's test does not use where there is one (so ingestion and the dbt build run on both)."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in (other_s3.env if other_s3 else {}).items():
            mp.setenv(name, value)
        mp.setenv("OLIST_STATE_DIR", str(test_settings.state_dir))
        mp.setenv("OLIST_DATA_DIR", str(tmp_path_factory.mktemp("dashboard-sample")))
        mp.setenv("OLIST_PG_SCHEMA", SCHEMA)
        mp.setenv("OLIST_BRONZE_PREFIX", PREFIX)
        mp.setenv("OLIST_DUCKDB_PATH", str(tmp_path_factory.mktemp("dashboard-warehouse") / "olist.duckdb"))
        get_settings.cache_clear()
        # as separate processes, the way a person runs them (and so no DuckDB connection stays in this one)
        for command in (["generate", "--scale", "0.02", "--seed", "42"], ["load"], ["ingest"],
                        ["transform", "--no-docs"]):
            olist(*command)
        yield get_settings()
        get_settings.cache_clear()
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f"drop schema if exists {SCHEMA} cascade")


@pytest.fixture(scope="module")
def cassandra(env):
    with running(engine("cassandra", env)) as svc, svc.session(timeout=30) as session:
        apply_schema(session)
        yield session


@pytest.fixture(scope="module")
def dashboard(env, cassandra):
    service = DashboardService(env)
    service.start()
    yield service
    service.stop()


def olist(*args: str, check: bool = True) -> subprocess.Popen | str:
    """Run ``olist ARGS`` in a child process with this process's environment; its output when ``check``."""
    cmd = [str(Path(sys.executable).with_name("olist")), *args]
    proc = subprocess.Popen(cmd, env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not check:
        return proc
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, f"olist {' '.join(args)}:\n{output}"
    return output


def gold(settings, sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


# -- the browser ---------------------------------------------------------------------------------------


class Browser:
    """One Chromium page that records console errors and every request leaving the dashboard."""

    def __init__(self, page: Page, base: str) -> None:
        self.page, self.base = page, base.rstrip("/")
        self.errors: list[str] = []
        self.outside: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: r.url.startswith((self.base, "data:", "blob:")) or self.outside.append(r.url))

    def open(self, path: str) -> Page:
        self.page.goto(self.base + path)
        return self.page

    def settled(self) -> None:
        """Wait until Dash has no callback in flight (its renderer's store says so) and every graph on the page
        has drawn: what the page shows is then final, not a render in progress."""
        self.page.wait_for_function(IDLE)

    def choose(self, slicer: str, text: str) -> None:
        """Pick the option reading exactly ``text`` in a (multi-)dropdown: open, search, click it, close; then
        wait until the dropdown shows it and the callbacks it set off are done. (Enter on the search would take
        whatever option is first while the list is still being filtered; clicking while an earlier choice's
        callbacks re-render the options clicks an element on its way out of the page.)"""
        option = self.page.locator(".dash-dropdown-option").filter(has_text=re.compile(f"^\\s*{re.escape(text)}\\s*$"))
        for _ in range(5):  # a re-render can close the list between the click and the typing: open it again
            self.settled()
            self.page.click(f"#{slicer}")
            try:  # the open list's search box (fill replaces what it held), then the option
                self.page.locator(".dash-dropdown-search-container input[type=search]").first.fill(text, timeout=5_000)
                option.first.click(timeout=5_000)
                break
            except PlaywrightTimeout:
                self.page.keyboard.press("Escape")
        else:
            raise AssertionError(f"the option {text!r} of #{slicer} never showed")
        self.page.keyboard.press("Escape")
        expect(self.page.locator(f"#{slicer}")).to_contain_text(text)
        self.settled()

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.settled()
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def assert_clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.outside == [], f"fetched from outside the machine: {self.outside}"


@pytest.fixture(scope="module")
def browser(dashboard):
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = chromium.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(20_000)
        yield Browser(page, dashboard.url)
        chromium.close()


def count(n) -> str:
    return f"{int(n):,}"


def money(v) -> str:
    return f"R$ {Decimal(v):,.2f}"


def expect_kpis(page: Page, values: dict[str, str]) -> None:
    for element_id, text in values.items():
        expect(page.locator(f"#{element_id}")).to_have_text(text)


# -- the BI views -----------------------------------------------------------------------------------------


def test_sales_kpis_equal_the_marts(env, browser):
    (orders, items, products, sales, freight), = gold(
        env, "select orders, order_items, products, total_sales, total_freight from gold.mart_headline_kpis")
    page = browser.open("/")
    expect_kpis(page, {"kpi-orders": count(orders), "kpi-items": count(items), "kpi-products": count(products),
                       "kpi-sales": money(sales), "kpi-freight": money(freight)})
    for graph in ("g-sales-month", "g-top-sales", "g-top-freight", "g-top-items", "g-freight-state", "g-map",
                  "g-freight-weight"):
        expect(page.locator(f"#{graph} .main-svg").first).to_be_visible()
    # years come from the purchase date: no 2019 or 2020 and no "(Blank)" state on screen
    months = page.locator("#g-sales-month .xtick text").all_text_contents()
    assert months and all(m[:4] in {"2016", "2017", "2018"} for m in months), months
    states = page.locator("#g-freight-state .ytick text").all_text_contents()
    assert states and all(re.fullmatch(r"[A-Z]{2}", s) for s in states), states
    browser.shot("sales")
    browser.assert_clean()


def test_slicers_filter_the_numbers_to_the_independent_sql(env, browser):
    page = browser.open("/")
    expect(page.locator("#kpi-orders")).not_to_have_text("–")
    browser.choose("f-state", "SP")
    browser.choose("f-year", "2018")
    (orders,), = gold(env, "select count(*) from gold.fct_orders "
                           "where customer_state = 'SP' and year(purchase_date) = 2018")
    (items, products, sales, freight), = gold(
        env, "select count(*), count(distinct product_id), sum(price), sum(freight_value) from gold.fct_order_items "
             "where customer_state = 'SP' and year(purchase_date) = 2018")
    expect_kpis(page, {"kpi-orders": count(orders), "kpi-items": count(items), "kpi-products": count(products),
                       "kpi-sales": money(sales), "kpi-freight": money(freight)})
    # the period of day narrows them further (dim_time_of_day: 18:00 onwards is night)
    browser.choose("f-period", "night")
    (night,), = gold(env, "select count(*) from gold.fct_orders where customer_state = 'SP' "
                          "and year(purchase_date) = 2018 and hour(purchased_at) >= 18")
    expect(page.locator("#kpi-orders")).to_have_text(count(night))
    assert page.locator("#g-freight-state .ytick text").all_text_contents() == ["SP"]
    browser.shot("sales-filtered")
    browser.assert_clean()


def test_delivery_view(env, browser):
    (on_time, delivered, late), = gold(
        env, "select avg(case when is_late then 0.0 else 1.0 end), count(*), count(*) filter (where is_late) "
             "from gold.fct_orders where delivered_at is not null")
    (headline,), = gold(env, "select on_time_rate from gold.mart_headline_kpis")
    assert on_time == pytest.approx(headline)
    page = browser.open("/delivery")
    expect_kpis(page, {"kpi-ontime": f"{on_time:.1%}", "kpi-delivered": count(delivered), "kpi-late": count(late)})
    for graph in ("g-days-state", "g-ontime-month", "g-late-review"):
        expect(page.locator(f"#{graph} .main-svg").first).to_be_visible()
    browser.shot("delivery")
    browser.assert_clean()


def test_sellers_view(env, browser):
    (sellers,), = gold(env, "select sellers from gold.mart_headline_kpis")
    top = gold(env, "select seller_id from gold.mart_seller_performance order by sales desc, seller_id limit 1")
    page = browser.open("/sellers")
    expect(page.locator("#kpi-sellers")).to_have_text(count(sellers))
    expect(page.locator("#sellers-top tbody tr").first).to_contain_text(top[0][0][:12])
    browser.shot("sellers")
    browser.assert_clean()


# -- the live view --------------------------------------------------------------------------------------


def write_window(session, end: dt.datetime, payments: dict[str, list[Decimal]]) -> None:
    """One 10-second window: its aggregated rows per payment type and the installments rows."""
    start = end - dt.timedelta(seconds=10)
    agg = session.prepare(f"INSERT INTO {KEYSPACE}.{NAMES.aggregated} (window_date, "
                          "window_start, window_end, payment_type, payment_count, payment_sum, payment_avg, "
                          "payment_min, payment_max, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    inst = session.prepare(f"INSERT INTO {KEYSPACE}.{NAMES.installments} (window_date, window_start, "
                           "window_end, payment_type, payment_installments, installment_count, updated_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)")
    now = dt.datetime.now(dt.UTC)
    for payment_type, values in payments.items():
        total = sum(values, Decimal(0))
        session.execute(agg, [start.date(), start, end, payment_type, len(values), total, float(total / len(values)),
                              min(values), max(values), now])
        session.execute(inst, [start.date(), start, end, payment_type, 1, len(values), now])


def seconds_floor(ts: dt.datetime) -> dt.datetime:
    return ts.replace(microsecond=0) - dt.timedelta(seconds=ts.second % 10)


@pytest.fixture
def empty_serving(cassandra):
    """The serving tables emptied: each live test states the windows it expects (and runs again, `nox -s
    browser`, without the last run's rows)."""
    for table in (NAMES.aggregated, NAMES.installments, NAMES.late):
        cassandra.execute(f"TRUNCATE {KEYSPACE}.{table}")
    return cassandra


def test_live_view_says_when_there_is_no_data(browser, empty_serving):
    page = browser.open("/live")
    expect(page.locator("#live-notice")).to_contain_text("No payment windows in Cassandra yet")
    expect(page.locator("#live-late")).to_have_text("0")
    browser.assert_clean()


def test_live_view_shows_the_windows_and_a_new_one_within_its_refresh(browser, empty_serving):
    cassandra = empty_serving
    newest = seconds_floor(dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=20)
    written = {newest - dt.timedelta(seconds=10 * i): {"credit_card": [Decimal("120.50"), Decimal("80.00")],
                                                       "boleto": [Decimal("45.10")]} for i in range(6)}
    for end, payments in written.items():
        write_window(cassandra, end, payments)
    total = sum((sum(v, Decimal(0)) for p in written.values() for v in p.values()), Decimal(0))
    late = cassandra.prepare(f"INSERT INTO {KEYSPACE}.{NAMES.late} (window_date, commit_time, order_id, "
                             "payment_sequential, op, payment_type, window_start, watermark_time, updated_at) "
                             "VALUES (?, ?, ?, 1, 'u', 'boleto', ?, ?, ?)")
    for i, end in enumerate(list(written)[:2]):  # two changes that reached Flink behind its watermark
        start = end - dt.timedelta(seconds=10)
        cassandra.execute(late, [start.date(), start, f"{i:032x}", start, end, dt.datetime.now(dt.UTC)])
    page = browser.open("/live")
    expect(page.locator("#live-late")).to_have_text("2")
    expect(page.locator("#kpi-live-total")).to_have_text(money(total))
    expect(page.locator("#kpi-live-count")).to_have_text(count(3 * len(written)))
    expect(page.locator("#live-fresh")).to_contain_text(newest.strftime("%H:%M:%S"))
    expect(page.locator("#live-notice")).to_have_text("")
    expect(page.locator("#live-layers")).to_contain_text("speed layer only (no batch view yet)")
    # a new window appears by itself within the refresh period (plus the read)
    new_end = newest + dt.timedelta(seconds=10)
    write_window(cassandra, new_end, {"voucher": [Decimal("999.99")]})
    expect(page.locator("#live-fresh")).to_contain_text(new_end.strftime("%H:%M:%S"), timeout=REFRESH_MS + 4000)
    expect(page.locator("#kpi-live-total")).to_have_text(money(total + Decimal("999.99")))
    expect(page.locator("#live-installments tbody tr").first).to_contain_text("voucher")
    browser.shot("live")
    browser.assert_clean()


# -- rebuilding the warehouse while the dashboard serves -------------------------------------------------


def test_transform_while_the_dashboard_serves(env, browser, dashboard):
    """`olist transform` rebuilds the DuckDB file while the dashboard keeps answering: neither side fails,
    since the dashboard reads a copy and never locks the file."""
    proc = olist("transform", "--no-docs", check=False)
    views = 0
    while proc.poll() is None:
        page = browser.open("/")
        expect(page.locator("#kpi-orders")).not_to_have_text("–")
        browser.settled()
        views += 1
    output = proc.communicate()[0]
    assert proc.returncode == 0, output
    assert views >= 2 and dashboard.health()
    (orders,), = gold(env, "select orders from gold.mart_headline_kpis")
    expect(browser.open("/").locator("#kpi-orders")).to_have_text(count(orders))
    browser.assert_clean()
