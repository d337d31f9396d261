"""The BI views' data access: SQL against the gold tables, parameterised by the slicers.

Every function takes a :class:`Filters` (state, city, purchase year and month, period of day; empty means
all) and returns plain rows. Where a mart has the slicers' grain (``gold.mart_sales``) it is read; where it
does not (distinct counts, delivery, sellers, weight bands), ``fct_order_items`` / ``fct_orders`` are read
joined to ``dim_time_of_day``, so the same five slicers filter every visual.

The SQL is shared by both targets (see :class:`Warehouse`). The DuckDB file is read through
:class:`WarehouseSnapshot`: a copy taken when the file changed and no writer is mid-transaction (no
``.wal`` beside it), checked by a query before it is used, and opened read-only per request. The dashboard
thus never holds a lock on the warehouse, so `olist transform` can rebuild it while the dashboard serves,
and the dashboard keeps serving its last good copy meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb

PERIODS = ("dawn", "morning", "afternoon", "night")  # dim_time_of_day's periods, in the day's order


class WarehouseUnavailable(RuntimeError):
    """No usable warehouse yet (never built, or being built for the first time)."""


class Warehouse(Protocol):
    """What the functions below read through: :class:`WarehouseSnapshot` (DuckDB) or
    :class:`pipeline.serving.dashboard.snowflake_source.SnowflakeWarehouse`. The SQL is shared, so it keeps to what
    both engines accept (``?`` placeholders, which the Snowflake reader translates)."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    def refresh(self) -> object: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Filters:
    """The slicers; an empty tuple means no filter on that column."""

    states: tuple[str, ...] = ()
    cities: tuple[str, ...] = ()
    years: tuple[int, ...] = ()
    months: tuple[int, ...] = ()
    periods: tuple[str, ...] = ()

    @classmethod
    def of(cls, states=None, cities=None, years=None, months=None, periods=None) -> Filters:
        """From the dropdowns' values (None, a value or a list)."""

        def norm(value, cast=str) -> tuple:
            if value is None or value == "":
                return ()
            values = value if isinstance(value, list | tuple) else [value]
            return tuple(sorted({cast(v) for v in values}))

        return cls(norm(states), norm(cities), norm(years, int), norm(months, int), norm(periods))


@dataclass
class Where:
    """A WHERE clause and its parameters (``?`` placeholders; the Snowflake reader translates them)."""

    clauses: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, column: str, values: Sequence[Any]) -> Where:
        if values:
            self.clauses.append(f"{column} in ({', '.join('?' * len(values))})")
            self.params.extend(values)
        return self

    @property
    def sql(self) -> str:
        return ("where " + " and ".join(self.clauses)) if self.clauses else ""


def where(f: Filters, *, state: str, city: str, year: str, month: str, period: str) -> Where:
    """The slicers as a WHERE clause over the given column expressions."""
    return (Where().add(state, f.states).add(city, f.cities).add(year, f.years).add(month, f.months)
            .add(period, f.periods))


def _on_sales(f: Filters) -> Where:
    return where(f, state="customer_state", city="customer_city", year="purchase_year", month="purchase_month",
                 period="period_of_day")


# fct_order_items / fct_orders joined to the period of day, with the purchase year and month.
ITEMS = """
    select i.*, extract(year from i.purchase_date) as purchase_year,
           extract(month from i.purchase_date) as purchase_month, t.period_of_day
    from gold.fct_order_items i
    left join gold.dim_time_of_day t on i.purchase_minute_of_day = t.minute_of_day
"""
ORDERS = """
    select o.*, extract(year from o.purchase_date) as purchase_year,
           extract(month from o.purchase_date) as purchase_month, t.period_of_day
    from gold.fct_orders o
    left join gold.dim_time_of_day t on o.purchase_minute_of_day = t.minute_of_day
"""


# -- reading the file --------------------------------------------------------------------------------


class WarehouseSnapshot:
    """Copy-on-read access to a DuckDB warehouse file that another process may be rebuilding."""

    def __init__(self, path: Path, cache_dir: Path | None = None) -> None:
        self.path = Path(path)
        self.cache_dir = Path(cache_dir or tempfile.mkdtemp(prefix="olist-dashboard-"))
        self._lock = threading.Lock()
        self._version: tuple[int, int] | None = None
        self._copy: Path | None = None

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def _writer_active(self) -> bool:
        return Path(f"{self.path}.wal").exists()

    def refresh(self) -> Path:
        """The current good copy, taken anew when the file changed and is quiet; raises
        :class:`WarehouseUnavailable` when there has never been a good one."""
        with self._lock:
            version = self._stat()
            if version is not None and version != self._version and not self._writer_active():
                self._take(version)
            if self._copy is None:
                raise WarehouseUnavailable(f"no warehouse at {self.path} yet: run `olist transform`")
            return self._copy

    def _take(self, version: tuple[int, int]) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        target = self.cache_dir / f"snapshot-{uuid.uuid4().hex[:8]}.duckdb"
        try:
            shutil.copyfile(self.path, target)
            if self._stat() != version or self._writer_active():
                raise OSError("changed while copying")
            with duckdb.connect(str(target), read_only=True) as con:
                con.execute("select count(*) from gold.mart_headline_kpis").fetchone()
        except (OSError, duckdb.Error):
            target.unlink(missing_ok=True)
            with contextlib.suppress(FileNotFoundError):
                Path(f"{target}.wal").unlink()
            return  # keep the last good copy; the next request tries again
        old, self._copy, self._version = self._copy, target, version
        if old is not None:
            with contextlib.suppress(OSError):
                os.unlink(old)  # a request still reading it keeps its open file

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived read-only connection to the current copy."""
        con = duckdb.connect(str(self.refresh()), read_only=True)
        try:
            yield con
        finally:
            con.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.connect() as con:
            cur = con.execute(sql, list(params))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def close(self) -> None:
        shutil.rmtree(self.cache_dir, ignore_errors=True)


# -- slicer options -------------------------------------------------------------------------------------


def slicer_options(wh: Warehouse, states: Sequence[str] = ()) -> dict[str, list]:
    """The values each slicer offers; cities only of the chosen states (all when none)."""
    out: dict[str, list] = {}
    for key, col in (("states", "customer_state"), ("years", "purchase_year"), ("months", "purchase_month")):
        out[key] = [r["v"] for r in wh.query(f"select distinct {col} as v from gold.mart_sales "
                                                 f"where {col} is not null order by 1")]
    w = Where().add("customer_state", tuple(states))
    out["cities"] = [r["v"] for r in wh.query(
        f"select distinct customer_city as v from gold.mart_sales {w.sql} order by 1", w.params) if r["v"]]
    present = {r["v"] for r in wh.query("select distinct period_of_day as v from gold.mart_sales")}
    out["periods"] = [p for p in PERIODS if p in present]
    return out


# -- the sales view -------------------------------------------------------------------------------------


def kpis(wh: Warehouse, f: Filters) -> dict[str, Any]:
    """The KPI cards: orders (every order, from fct_orders), order items, distinct products, sales and
    freight (from fct_order_items). Unfiltered they equal ``gold.mart_headline_kpis``."""
    wo = where(f, state="customer_state", city="customer_city", year="purchase_year", month="purchase_month",
               period="period_of_day")
    orders = wh.query(f"select count(*) as orders from ({ORDERS}) {wo.sql}", wo.params)[0]
    items = wh.query(
        f"select count(*) as order_items, count(distinct product_id) as products, "
        f"coalesce(sum(price), 0) as total_sales, coalesce(sum(freight_value), 0) as total_freight "
        f"from ({ITEMS}) {wo.sql}", wo.params)[0]
    return {**orders, **items}


def sales_by_month(wh: Warehouse, f: Filters) -> list[dict[str, Any]]:
    """Sales and freight per purchase year and month (years from the purchase date)."""
    w = _on_sales(f)
    return wh.query(f"select purchase_year, purchase_month, sum(sales) as sales, sum(freight) as freight "
                    f"from gold.mart_sales {w.sql} group by 1, 2 order by 1, 2", w.params)


def top_categories(wh: Warehouse, f: Filters, by: str = "sales", n: int = 10) -> list[dict[str, Any]]:
    """The ``n`` categories with the most ``by`` (sales, freight or items), largest first."""
    if by not in ("sales", "freight", "items"):
        raise ValueError(f"unknown measure {by!r}")
    w = _on_sales(f)
    return wh.query(f"select product_category, sum({by}) as value from gold.mart_sales {w.sql} "
                    f"group by 1 order by 2 desc, 1 limit {int(n)}", w.params)


def by_state(wh: Warehouse, f: Filters) -> list[dict[str, Any]]:
    """Sales, freight and items per customer state, with the state's centroid (the mean of its zip-code
    centroids, weighted by their points) for the map; largest sales first."""
    w = _on_sales(f)
    return wh.query(f"""
        with sales as (
            select customer_state as state, sum(sales) as sales, sum(freight) as freight, sum(items) as items
            from gold.mart_sales {w.sql} group by 1
        ),
        centres as (
            select state, sum(latitude * points) / sum(points) as latitude,
                   sum(longitude * points) / sum(points) as longitude
            from gold.dim_geolocation group by 1
        )
        select sales.*, centres.latitude, centres.longitude
        from sales left join centres on sales.state = centres.state
        order by sales desc, state""", w.params)


def zip_centroids(wh: Warehouse) -> list[dict[str, Any]]:
    """Every zip-code centroid (already inside Brazil): the map's outline."""
    return wh.query("select latitude, longitude from gold.dim_geolocation")


def freight_vs_weight(wh: Warehouse, f: Filters, band_g: int = 500) -> list[dict[str, Any]]:
    """Freight against product weight in ``band_g`` bands (the seed's scatter without one point per item)."""
    w = _on_sales(f)
    w.clauses.append("product_weight_g is not null")
    return wh.query(f"""
        select floor(product_weight_g / {int(band_g)}) * {int(band_g)} as weight_band_g,
               avg(product_weight_g) as avg_weight_g, count(*) as items,
               sum(freight_value) as freight, avg(freight_value) as avg_freight
        from ({ITEMS}) {w.sql} group by 1 order by 1""", w.params)


# -- the delivery view ----------------------------------------------------------------------------------

DELIVERED = "delivered_at is not null"


def delivery_kpis(wh: Warehouse, f: Filters) -> dict[str, Any]:
    """On-time rate (of orders with a delivery date, as in mart_headline_kpis), mean days to deliver,
    delivered and late orders."""
    w = _on_sales(f)
    w.clauses.append(DELIVERED)
    return wh.query(f"""
        select count(*) as delivered, coalesce(sum(case when is_late then 1 else 0 end), 0) as late,
               avg(case when is_late then 0.0 else 1.0 end) as on_time_rate, avg(days_to_deliver) as avg_days
        from ({ORDERS}) {w.sql}""", w.params)[0]


def delivery_by_state(wh: Warehouse, f: Filters) -> list[dict[str, Any]]:
    w = _on_sales(f)
    w.clauses.append(DELIVERED)
    return wh.query(f"""
        select customer_state as state, count(*) as delivered, avg(days_to_deliver) as avg_days,
               avg(case when is_late then 0.0 else 1.0 end) as on_time_rate
        from ({ORDERS}) {w.sql} group by 1 order by avg_days desc, 1""", w.params)


def delivery_by_month(wh: Warehouse, f: Filters) -> list[dict[str, Any]]:
    w = _on_sales(f)
    w.clauses.append(DELIVERED)
    return wh.query(f"""
        select purchase_year, purchase_month, count(*) as delivered,
               avg(case when is_late then 0.0 else 1.0 end) as on_time_rate
        from ({ORDERS}) {w.sql} group by 1, 2 order by 1, 2""", w.params)


def late_vs_review(wh: Warehouse, f: Filters) -> list[dict[str, Any]]:
    """Per review score: delivered orders on time and late (does lateness drive bad reviews?)."""
    w = _on_sales(f)
    w.clauses += [DELIVERED, "review_score is not null"]
    return wh.query(f"""
        select review_score, sum(case when is_late then 0 else 1 end) as on_time,
               sum(case when is_late then 1 else 0 end) as late
        from ({ORDERS}) {w.sql} group by 1 order by 1""", w.params)


# -- the sellers view -----------------------------------------------------------------------------------


def seller_stats(wh: Warehouse, f: Filters, n: int | None = 15) -> list[dict[str, Any]]:
    """Per seller, on the items the slicers keep: orders, items, sales, freight, mean review score and
    late rate of those orders; largest sales first (``n`` of them, all when None)."""
    w = _on_sales(f)
    limit = f"limit {int(n)}" if n else ""
    return wh.query(f"""
        with items as (select * from ({ITEMS}) {w.sql}),
        per_seller as (
            select seller_id, count(distinct order_id) as orders, count(*) as items,
                   sum(price) as sales, sum(freight_value) as freight
            from items group by 1
        ),
        seller_orders as (
            select distinct items.seller_id, o.order_id, o.review_score, o.is_late
            from items inner join gold.fct_orders o on items.order_id = o.order_id
        ),
        quality as (
            select seller_id, avg(review_score) as avg_review_score,
                   avg(case when is_late then 1.0 when is_late is not null then 0.0 end) as late_rate
            from seller_orders group by 1
        )
        select per_seller.*, s.seller_city, s.seller_state, quality.avg_review_score, quality.late_rate
        from per_seller
        inner join gold.dim_sellers s on per_seller.seller_id = s.seller_id
        left join quality on per_seller.seller_id = quality.seller_id
        order by sales desc, seller_id {limit}""", w.params)


def sellers_by_state(wh: Warehouse, f: Filters) -> list[dict[str, Any]]:
    """Sellers and their sales per seller state, on the items the slicers keep."""
    w = _on_sales(f)
    return wh.query(f"""
        select s.seller_state as state, count(distinct i.seller_id) as sellers, sum(i.price) as sales
        from ({ITEMS}) i inner join gold.dim_sellers s on i.seller_id = s.seller_id
        {w.sql} group by 1 order by sales desc, 1""", w.params)
