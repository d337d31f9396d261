"""Orders with their lifecycle, the customer of each order, order items and payments."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from pipeline.batch.generator import columns as C
from pipeline.batch.generator.catalog import Products, Sellers
from pipeline.batch.generator.columns import DAY, TS_NULL
from pipeline.batch.generator.counts import apportion, group_index, group_sizes, scaled
from pipeline.batch.generator.geography import UF, Places, draw_addresses, zip_text
from pipeline.batch.generator.reference import STATES

STATUS_COUNTS = {
    "delivered": 96_478, "shipped": 1_107, "canceled": 625, "unavailable": 609,
    "invoiced": 314, "processing": 301, "created": 5, "approved": 2,
}
STATUSES = list(STATUS_COUNTS)
DELIVERED, SHIPPED, CANCELED, UNAVAILABLE, INVOICED, PROCESSING, CREATED, APPROVED = range(8)

# Orders per purchase month in the full data set; two days carry their own count.
MONTHLY_ORDERS = {
    (2016, 9): 4, (2016, 10): 324, (2016, 12): 1,
    (2017, 1): 800, (2017, 2): 1780, (2017, 3): 2682, (2017, 4): 2404, (2017, 5): 3700, (2017, 6): 3245,
    (2017, 7): 4026, (2017, 8): 4331, (2017, 9): 4285, (2017, 10): 4631, (2017, 11): 7544, (2017, 12): 5673,
    (2018, 1): 7269, (2018, 2): 6728, (2018, 3): 7211, (2018, 4): 6939, (2018, 5): 6873, (2018, 6): 6167,
    (2018, 7): 6292, (2018, 8): 6512, (2018, 9): 16, (2018, 10): 4,
}
# The lone December 2016 order, and Black Friday 2017.
DAILY_ORDERS = {dt.date(2016, 12, 23): 1, dt.date(2017, 11, 24): 1176}
HOURLY_ORDERS = (
    2394, 1170, 510, 272, 206, 188, 502, 1231, 2967, 4785, 6177, 6578,
    5995, 6518, 6569, 6454, 6675, 6150, 5769, 5982, 6193, 6217, 5816, 4123,
)


def _epoch(text: str) -> int:
    return int(np.datetime64(text, "s").astype(np.int64))


FIRST_PURCHASE = _epoch("2016-09-04T21:15:19")
LAST_PURCHASE = _epoch("2018-10-17T17:30:18")
LAST_DELIVERY = _epoch("2018-10-17T13:22:46")
DELIVERED_UNTIL = _epoch("2018-08-29T23:59:59")  # later purchases are never delivered in the real file
LAST_SHIPPING_LIMIT = _epoch("2020-04-09T22:35:08")
FIRST_2020 = _epoch("2020-02-01T00:00:00")
LATE_SHARE = 0.081  # delivered after the estimated date

ITEMS_PER_ORDER = {
    1: 88_863, 2: 7_516, 3: 1_322, 4: 505, 5: 204, 6: 198, 7: 22, 8: 8, 9: 3, 10: 8,
    11: 4, 12: 5, 13: 1, 14: 2, 15: 2, 20: 2, 21: 1,
}
PAYMENTS_PER_ORDER = {
    2: 2_437, 3: 242, 4: 108, 5: 52, 6: 36, 7: 28, 8: 11, 9: 9, 10: 5, 11: 8, 12: 8, 13: 3,
    14: 2, 15: 2, 16: 2, 17: 1, 18: 1, 19: 2, 21: 1, 22: 1, 26: 1, 29: 1,
}
ORDERS_PER_PERSON = {2: 2_745, 3: 203, 4: 30, 5: 8, 6: 6, 7: 3, 9: 1, 17: 1}
FULL_PERSONS = 96_096
FULL_ORDERS_WITHOUT_ITEMS = 775
# Orders without items by status in the full file (the rest of the 775 come from invoiced/shipped).
NO_ITEMS_BY_STATUS = {UNAVAILABLE: 603 / 609, CANCELED: 164 / 625, CREATED: 1.0}

PAYMENT_TYPES = ["credit_card", "boleto", "voucher", "debit_card", "not_defined"]
CREDIT, BOLETO, VOUCHER, DEBIT, NOT_DEFINED = range(5)
# Credit-card rows by number of installments 1..24 in the full file.
CARD_INSTALLMENTS = (
    25455, 12413, 10461, 7098, 5239, 3920, 1626, 4268, 644, 5328, 23, 133,
    16, 15, 74, 5, 8, 27, 1, 17, 3, 1, 1, 18,
)
MAX_PAYMENT_CENTS = 1_366_408


@dataclass(frozen=True)
class Orders:
    """The order table's frames plus what the reviews need to know about each order."""

    ids: np.ndarray
    status: np.ndarray
    purchase: np.ndarray
    delivered: np.ndarray  # TS_NULL when not delivered
    estimated: np.ndarray
    frames: dict[str, C.Frame]


def _day_weights() -> tuple[np.ndarray, np.ndarray]:
    """Epoch days from the first to the last purchase day and the probability of each."""
    first = dt.date(2016, 9, 4)
    last = dt.date(2018, 10, 17)
    days = [first + dt.timedelta(d) for d in range((last - first).days + 1)]
    in_month: dict[tuple[int, int], int] = {}
    fixed: dict[tuple[int, int], int] = {}
    for day in days:
        in_month[day.year, day.month] = in_month.get((day.year, day.month), 0) + 1
    for day, count in DAILY_ORDERS.items():
        in_month[day.year, day.month] -= 1
        fixed[day.year, day.month] = fixed.get((day.year, day.month), 0) + count
    weights = []
    for day in days:
        key = (day.year, day.month)
        if day in DAILY_ORDERS:
            weights.append(DAILY_ORDERS[day])
        else:
            weights.append((MONTHLY_ORDERS.get(key, 0) - fixed.get(key, 0)) / in_month[key])
    w = np.array(weights, dtype=np.float64)
    epoch_days = np.array([(d - dt.date(1970, 1, 1)).days for d in days], dtype=np.int64)
    return epoch_days, w / w.sum()


def _take(rng: np.random.Generator, pool: np.ndarray, k: int, taken: np.ndarray) -> np.ndarray:
    """``k`` random members of ``pool`` not yet ``taken``; marks them taken."""
    free = pool[~taken[pool]]
    pick = rng.choice(free, size=max(0, min(k, len(free))), replace=False)
    taken[pick] = True
    return pick


def _lifecycle(rng: np.random.Generator, status: np.ndarray, scale: float) -> dict[str, np.ndarray]:
    """Purchase, approval, carrier, delivery and estimate timestamps with the real null patterns."""
    n = len(status)
    days, p = _day_weights()
    hour_p = np.array(HOURLY_ORDERS, dtype=np.float64) / sum(HOURLY_ORDERS)
    purchase = days[rng.choice(len(days), n, p=p)] * DAY + rng.choice(24, n, p=hour_p) * 3600
    purchase = np.clip(purchase + rng.integers(0, 3600, n), FIRST_PURCHASE, LAST_PURCHASE)
    # Orders bought at the very end were never delivered: swap their status with earlier ones.
    late_buy = np.flatnonzero((status == DELIVERED) & (purchase > DELIVERED_UNTIL))
    early = np.flatnonzero((status != DELIVERED) & (purchase <= DELIVERED_UNTIL))
    k = min(len(late_buy), len(early))
    if k:
        swap = rng.choice(early, size=k, replace=False)
        status[late_buy[:k]], status[swap] = status[swap], DELIVERED
    canceled = np.flatnonzero(status == CANCELED)
    if len(canceled) >= 2:  # the real first and last purchases are canceled orders
        a, b = rng.choice(canceled, size=2, replace=False)
        purchase[a], purchase[b] = FIRST_PURCHASE, LAST_PURCHASE

    quick = rng.random(n) < 0.78  # most approvals take minutes, boletos a day or more
    delay = np.where(quick, rng.exponential(0.35 * 3600, n) + 10, rng.uniform(20 * 3600, 75 * 3600, n))
    approved = purchase + delay.astype(np.int64)
    est_days = np.clip(np.round(rng.normal(24, 8, n)), 3, 60)
    est_days = np.where(rng.random(n) < 0.003, rng.integers(60, 156, n), est_days).astype(np.int64)
    estimated = (purchase // DAY + est_days) * DAY
    late = rng.random(n) < LATE_SHARE
    on_time = purchase + rng.beta(2.6, 2.9, n) * (estimated - purchase)
    on_time = np.maximum(on_time, approved + 0.3 * DAY + rng.uniform(0, DAY, n))
    late_at = estimated + rng.uniform(0.3, 1.0, n) * DAY + rng.exponential(7 * DAY, n)
    delivered = np.minimum(np.where(late, late_at, on_time).astype(np.int64), LAST_DELIVERY)
    delivered = np.maximum(delivered, approved + 3600)
    to_carrier = np.minimum(rng.gamma(1.5, 1.9 * DAY, n), 0.7 * (delivered - approved))
    carrier = approved + to_carrier.astype(np.int64)

    has_approved = status != CREATED
    has_carrier = np.isin(status, [DELIVERED, SHIPPED])
    has_delivered = status == DELIVERED
    taken = np.zeros(n, dtype=bool)
    delivered_rows = np.flatnonzero(status == DELIVERED)
    has_approved[_take(rng, delivered_rows, scaled(14, scale), taken)] = False
    has_carrier[_take(rng, delivered_rows, scaled(2, scale), taken)] = False
    has_delivered[_take(rng, delivered_rows, scaled(8, scale, 1), taken)] = False
    canceled = rng.permutation(np.flatnonzero(status == CANCELED))
    nc = len(canceled)
    k_null, k_carrier, k_delivered = round(nc * 141 / 625), round(nc * 75 / 625), round(nc * 6 / 625)
    has_approved[canceled[:k_null]] = False
    has_carrier[canceled[k_null : k_null + k_carrier]] = True
    has_delivered[canceled[k_null : k_null + k_delivered]] = True
    return {
        "purchase": purchase,
        "approved": np.where(has_approved, approved, TS_NULL),
        "approved_or_purchase": np.where(has_approved, approved, purchase),
        "carrier": np.where(has_carrier, carrier, TS_NULL),
        "delivered": np.where(has_delivered, delivered, TS_NULL),
        "estimated": estimated,
    }


def _without_items(rng: np.random.Generator, status: np.ndarray, scale: float) -> np.ndarray:
    """Mask of the orders that have no items: mostly unavailable and canceled ones."""
    target = scaled(FULL_ORDERS_WITHOUT_ITEMS, scale, 1)
    mask = np.zeros(len(status), dtype=bool)
    for code, share in NO_ITEMS_BY_STATUS.items():
        rows = np.flatnonzero(status == code)
        mask[rng.choice(rows, size=min(len(rows), round(len(rows) * share)), replace=False)] = True
    extra = target - int(mask.sum())
    if extra > 0:
        pool = np.flatnonzero(np.isin(status, [INVOICED, SHIPPED, CANCELED, UNAVAILABLE]) & ~mask)
        mask[rng.choice(pool, size=min(extra, len(pool)), replace=False)] = True
    elif extra < 0:
        mask[rng.choice(np.flatnonzero(mask & (status != CREATED)), size=-extra, replace=False)] = False
    return mask


def _build_items(rng, order_ids, times, no_items, products: Products, sellers: Sellers, n_items: int, scale):
    """Item rows sorted like the real file (by order id), and each order's price + freight total."""
    item_orders = np.flatnonzero(~no_items)
    sizes = group_sizes(rng, ITEMS_PER_ORDER, scale, len(item_orders), n_items)
    # Multi-item orders often repeat one product; sometimes they mix a few.
    distinct = 1 + rng.binomial(sizes - 1, 0.27)
    n_slots = int(distinct.sum())
    n_products = len(products.ids)
    slot_product = rng.choice(n_products, size=n_slots, p=products.popularity / products.popularity.sum())
    first = rng.choice(n_slots, size=min(n_slots, n_products), replace=False)
    slot_product[first] = rng.permutation(n_products)[: len(first)]  # every product sells at least once
    group, position = group_index(sizes)
    d = distinct[group]
    within = np.where(position - 1 < d, position - 1, rng.integers(0, d))
    product = slot_product[(np.cumsum(distinct) - distinct)[group] + within]
    order = item_orders[group]
    rank = np.empty(len(order_ids), dtype=np.int64)
    rank[np.argsort(order_ids, kind="stable")] = np.arange(len(order_ids))
    perm = np.lexsort((within, rank[order]))
    order, product = order[perm], product[perm]
    starts = np.flatnonzero(np.r_[True, order[1:] != order[:-1]])
    item_id = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)])) + 1

    n = len(order)
    price = products.price_cents[product].astype(np.float64)
    varied = rng.random(n) < 0.06
    price[varied] *= rng.uniform(0.85, 1.15, int(varied.sum()))
    freight = products.freight_cents[product] * rng.uniform(0.85, 1.15, n)
    freight[rng.random(n) < 0.0034] = 0
    total = np.bincount(order, weights=price + freight, minlength=len(order_ids))
    over = total[order] > MAX_PAYMENT_CENTS  # keep the largest order near the real maximum
    factor = MAX_PAYMENT_CENTS * rng.uniform(0.6, 0.98, len(order_ids)) / np.maximum(total, 1)
    price[over] *= factor[order[over]]
    freight[over] *= factor[order[over]]
    price = np.maximum(np.round(price), 85).astype(np.int64)
    freight = np.round(freight).astype(np.int64)
    total = np.bincount(order, weights=price + freight, minlength=len(order_ids)).astype(np.int64)

    handling = rng.choice([2, 3, 4, 5, 6, 7, 8, 10, 15], size=len(order_ids),
                          p=[0.03, 0.07, 0.1, 0.12, 0.45, 0.1, 0.05, 0.05, 0.03])
    limit = times["approved_or_purchase"][order] + handling[order] * DAY
    odd = rng.choice(item_orders, size=min(len(item_orders), scaled(4, scale, 1)), replace=False)
    odd_limits = rng.integers(FIRST_2020, LAST_SHIPPING_LIMIT, len(odd))
    odd_limits[0] = LAST_SHIPPING_LIMIT
    for o, when in zip(odd.tolist(), odd_limits.tolist(), strict=True):
        limit[order == o] = when
    frame = C.Frame(
        "order_items",
        {
            "order_id": C.lookup(order, order_ids),
            "order_item_id": C.integers(item_id),
            "product_id": C.lookup(product, products.ids),
            "seller_id": C.lookup(products.seller[product], sellers.ids),
            "shipping_limit_date": C.timestamps(limit),
            "price": C.money(price),
            "freight_value": C.money(freight),
        },
    )
    return frame, total


def _build_payments(rng, order_ids, status, delivered, no_items, totals, n_payments: int, scale: float):
    """Payment rows: vouchers split some orders; one delivered order has none."""
    n_orders = len(order_ids)
    unpaid_pool = np.flatnonzero((status == DELIVERED) & ~no_items & (delivered != TS_NULL))
    unpaid = int(rng.choice(unpaid_pool))
    paid = np.delete(np.arange(n_orders), unpaid)
    sizes = group_sizes(rng, PAYMENTS_PER_ORDER, scale, len(paid), n_payments)
    group, seq = group_index(sizes)
    order = paid[group]
    n = len(order)
    multi = sizes[group] > 1
    kind = np.full(n, CREDIT, dtype=np.int64)
    kind[multi] = VOUCHER
    kind[multi & (seq == 1) & (rng.random(n) < 0.91)] = CREDIT
    taken = multi.copy()
    singles = np.flatnonzero(~multi)
    canceled_singles = singles[status[order[singles]] == CANCELED]
    k_nd = scaled(3, scale, 1)
    nd = _take(rng, canceled_singles, k_nd, taken)
    kind[nd] = NOT_DEFINED
    kind[_take(rng, singles, k_nd - len(nd), taken)] = NOT_DEFINED
    kind[_take(rng, singles, scaled(19_784, scale), taken)] = BOLETO
    kind[_take(rng, singles, scaled(1_529, scale), taken)] = DEBIT
    kind[_take(rng, singles, scaled(5_775, scale) - int((kind == VOUCHER).sum()), taken)] = VOUCHER

    p = np.array(CARD_INSTALLMENTS, dtype=np.float64)
    installments = np.ones(n, dtype=np.int64)
    card = np.flatnonzero(kind == CREDIT)
    installments[card] = rng.choice(np.arange(1, 25), size=len(card), p=p / p.sum())
    installments[rng.choice(card, size=min(len(card), scaled(2, scale, 1)), replace=False)] = 0

    order_total = totals.astype(np.float64)
    empty = totals == 0
    order_total[empty] = np.round(rng.lognormal(np.log(10_000), 0.8, int(empty.sum())))
    due = order_total[order]
    weight = rng.gamma(1.0, 1.0, n)
    share = np.where(multi, weight / np.bincount(group, weights=weight)[group], 1.0)
    value = np.maximum(np.floor(due * share), 1.0)
    last = seq == sizes[group]
    value[last] += due[last] - np.bincount(group, weights=value)[group[last]]
    interest = (~multi) & (kind == CREDIT) & (installments >= 2) & (rng.random(n) < 0.08)
    value[interest] *= rng.uniform(1.01, 1.12, int(interest.sum()))
    value = np.clip(np.round(value), 0, MAX_PAYMENT_CENTS).astype(np.int64)
    value[kind == NOT_DEFINED] = 0
    vouchers = np.flatnonzero(kind == VOUCHER)
    value[rng.choice(vouchers, size=min(len(vouchers), scaled(6, scale)), replace=False)] = 0

    perm = rng.permutation(n)
    return C.Frame(
        "order_payments",
        {
            "order_id": C.lookup(order[perm], order_ids),
            "payment_sequential": C.integers(seq[perm]),
            "payment_type": C.lookup(kind[perm], PAYMENT_TYPES),
            "payment_installments": C.integers(installments[perm]),
            "payment_value": C.money(value[perm]),
        },
    )


def _build_customers(rng, places: Places, n_orders: int, scale: float):
    """One customer row per order; some people (customer_unique_id) place several orders."""
    n_persons = min(n_orders, scaled(FULL_PERSONS, scale, 1))
    sizes = group_sizes(rng, ORDERS_PER_PERSON, scale, n_persons, n_orders)
    person = rng.permutation(group_index(sizes)[0])  # customer row i belongs to order i
    weights = np.array([s.customers for s in STATES], dtype=np.float64)
    address = draw_addresses(rng, places, n_persons, weights, scaled(278, scale, 1))
    unique_ids = C.hex_ids(rng, n_persons)
    customer_ids = C.hex_ids(rng, n_orders)
    zips = zip_text(address.prefix)
    cities = address.city_names()
    perm = rng.permutation(n_orders)
    frame = C.Frame(
        "customers",
        {
            "customer_id": C.text(customer_ids[perm]),
            "customer_unique_id": C.lookup(person[perm], unique_ids),
            "customer_zip_code_prefix": C.lookup(person[perm], zips),
            "customer_city": C.lookup(person[perm], cities),
            "customer_state": C.lookup(address.state[person[perm]], UF),
        },
    )
    return frame, customer_ids


def build_orders(
    rng: np.random.Generator,
    places: Places,
    sellers: Sellers,
    products: Products,
    rows: dict[str, int],
    scale: float,
) -> Orders:
    """Orders, customers, order items and payments, consistent with each other."""
    n = rows["orders"]
    per_status = apportion(list(STATUS_COUNTS.values()), n, minimum=1)
    status = rng.permutation(np.repeat(np.arange(len(STATUSES)), per_status))
    times = _lifecycle(rng, status, scale)
    customers, customer_ids = _build_customers(rng, places, n, scale)
    order_ids = C.hex_ids(rng, n)
    no_items = _without_items(rng, status, scale)
    items, totals = _build_items(
        rng, order_ids, times, no_items, products, sellers, rows["order_items"], scale
    )
    payments = _build_payments(
        rng, order_ids, status, times["delivered"], no_items, totals, rows["order_payments"], scale
    )
    orders = C.Frame(
        "orders",
        {
            "order_id": C.text(order_ids),
            "customer_id": C.text(customer_ids),
            "order_status": C.lookup(status, STATUSES),
            "order_purchase_timestamp": C.timestamps(times["purchase"]),
            "order_approved_at": C.timestamps(times["approved"]),
            "order_delivered_carrier_date": C.timestamps(times["carrier"]),
            "order_delivered_customer_date": C.timestamps(times["delivered"]),
            "order_estimated_delivery_date": C.timestamps(times["estimated"]),
        },
    )
    frames = {f.name: f for f in (orders, customers, items, payments)}
    return Orders(order_ids, status, times["purchase"], times["delivered"], times["estimated"], frames)
