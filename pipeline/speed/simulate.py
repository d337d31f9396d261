"""Live trading mimicked in PostgreSQL: complete new orders (a customer, items of loaded products and sellers,
a payment of the order's value), voucher splits, updates and rare cancellations, drawn from the loaded data's
distributions, at a controlled rate of payment-row changes.

Every order stays the kind the batch models accept: its payments add up to its items' price plus freight (a
voucher split moves part of payment 1 to vouchers; an update changes the instalments, or discounts item 1 and
payment 1 by the same amount), so simulated trading never breaks a dbt test. The sequence of operations is fixed
by the seed and the number of orders already there (a rerun trades in new orders, never an earlier run's); the
clock only decides how many go into each commit. A commit's operations are written a few statements at a time
(one per kind of row change, rows passed as arrays), cut wherever an order comes back, so every order's changes
keep their planned order.
"""

from __future__ import annotations

import collections
import itertools
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import psycopg
from psycopg import sql

from pipeline.contracts import load_registry

# Share of operations by kind; each changes one to three order_payments rows.
MIX = {"new_order": 0.66, "voucher_split": 0.06, "update": 0.25, "delete": 0.03}
MAX_BATCH = 1000  # payment-row changes per transaction at most
TRANSACTION_ID = "select pg_current_xact_id()::text::bigint % 4294967296"  # the 32-bit xid Debezium reports
Item = tuple[str, str, int, int]  # product_id, seller_id, price and freight in cents


@dataclass
class Profile:
    """What new orders look like, read from the loaded tables (or the contract when they are empty)."""

    types: list[str]
    type_weights: list[float]
    installments: dict[str, tuple[list[int], list[float]]]  # type -> (values, weights)
    items: list[Item]  # a sample of loaded order items (none: orders get no items)
    items_per_order: tuple[list[int], list[float]]  # (counts, weights)
    places: list[tuple[str, str, str]]  # a sample of customer (zip prefix, city, state)

    @classmethod
    def from_database(cls, conn: psycopg.Connection, schema: str) -> Profile:
        def rows(query: str, table: str) -> list[tuple]:
            return [tuple(r) for r in conn.execute(sql.SQL(query).format(sql.Identifier(schema, table))).fetchall()]

        places = rows("select customer_zip_code_prefix, customer_city, customer_state from {} "
                      "order by customer_id limit 5000", "customers") or [("01001", "sao paulo", "SP")]
        items = rows("select product_id, seller_id, (price * 100)::int, (freight_value * 100)::int from {} "
                     "order by order_id, order_item_id limit 20000", "order_items")
        per_order = collections.Counter(n for (n,) in rows("select count(*) from {} group by order_id "
                                                            "order by 1 limit 100000", "order_items")) or {1: 1}
        counts = sorted(per_order)
        shape = (counts, [float(per_order[c]) for c in counts])
        payments = rows("select payment_type, payment_installments from {} where payment_type <> 'voucher' "
                        "order by order_id, payment_sequential limit 200000", "order_payments")
        kinds = collections.Counter(r[0] for r in payments)
        types = sorted(kinds)
        inst: dict[str, tuple[list[int], list[float]]] = {}
        for t in types:
            by_count = collections.Counter(r[1] for r in payments if r[0] == t)
            keys = sorted(by_count)
            inst[t] = (keys, [float(by_count[k]) for k in keys])
        weights = [float(kinds[t]) for t in types]
        # a means of payment the contract allows and no loaded row has yet (an empty table, a value just added,
        # say pix) is used too, as often as the average one
        new = [t for t in load_registry().dataset("order_payments").column("payment_type").enum or ()
               if t not in kinds and t not in ("voucher", "not_defined")]
        share = sum(weights) / len(weights) if weights else 1.0
        return cls(types + new, weights + [share] * len(new), inst | {t: ([1], [1.0]) for t in new}, items, shape,
                   places)


@dataclass(frozen=True)
class Op:
    """One planned operation on an order: the payment rows it changes (what CDC carries) and the order's rows.
    Money is in cents."""

    kind: str
    order_id: str
    customer: tuple[str, str, str, str, str] | None = None  # new orders: (id, unique id, zip, city, state)
    items: tuple[tuple[int, str, str, int, int], ...] = ()  # new orders: (item id, product, seller, price, freight)
    inserts: tuple[tuple[int, str, int, int], ...] = ()  # (sequential, type, installments, value)
    update: tuple[int, int] | None = None  # payment 1's new (installments, value)
    item_price: int | None = None  # item 1's new price (a discount moves price and payment 1 together)
    deletes: int = 0  # payments 1..n removed (the order is cancelled)

    @property
    def changes(self) -> int:
        """Payment rows this operation changes."""
        return len(self.inserts) + (self.update is not None) + self.deletes


@dataclass
class _Order:
    """What the plan remembers of a recent order: its payments and item 1's price (cents)."""

    order_id: str
    payments: int
    installments: int
    value: int  # payment 1's value
    item_price: int | None


class Plan:
    """The deterministic sequence of operations for a seed (and a generation: what the database already holds, so
    a run on a database an earlier run traded in never reuses that run's order ids)."""

    def __init__(self, profile: Profile, seed: int, generation: int = 0) -> None:
        self.rng = random.Random(f"{seed}:{generation}" if generation else seed)
        self.profile = profile
        self.recent: collections.deque[_Order] = collections.deque(maxlen=2000)
        self.type_cum = list(itertools.accumulate(profile.type_weights))
        self.inst_cum = {t: (v, list(itertools.accumulate(w))) for t, (v, w) in profile.installments.items()}
        self.count_cum = (profile.items_per_order[0], list(itertools.accumulate(profile.items_per_order[1])))
        self.kinds, self.kind_cum = list(MIX), list(itertools.accumulate(MIX.values()))

    def _id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def _payment(self) -> tuple[str, int]:
        kind = self.rng.choices(self.profile.types, cum_weights=self.type_cum)[0]
        values, cum = self.inst_cum[kind]
        return kind, self.rng.choices(values, cum_weights=cum)[0]

    def _items(self) -> tuple[tuple[int, str, str, int, int], ...]:
        if not self.profile.items:
            return ()
        n = self.rng.choices(self.count_cum[0], cum_weights=self.count_cum[1])[0]
        first = self.rng.choice(self.profile.items)  # several items of an order are often the same product
        picked = [first if self.rng.random() < 0.6 else self.rng.choice(self.profile.items) for _ in range(n)]
        return tuple((i, p, s, price, freight) for i, (p, s, price, freight) in enumerate(picked, 1))

    def _new_order(self) -> Op:
        order_id, customer_id = self._id(), self._id()
        zip_code, city, state = self.rng.choice(self.profile.places)
        items = self._items()
        value = sum(price + freight for *_, price, freight in items) or self.rng.randint(1_000, 30_000)
        kind, installments = self._payment()
        self.recent.append(_Order(order_id, 1, installments, value, items[0][3] if items else None))
        return Op("new_order", order_id, customer=(customer_id, self._id(), zip_code, city, state), items=items,
                  inserts=((1, kind, installments, value),))

    def __iter__(self) -> Iterator[Op]:
        while True:
            kind = self.rng.choices(self.kinds, cum_weights=self.kind_cum)[0]
            if kind == "new_order" or not self.recent:
                yield self._new_order()
                continue
            idx = self.rng.randrange(len(self.recent))
            order = self.recent[idx]
            if kind == "voucher_split":
                if order.value < 1_000:  # too small to split: change the instalments instead
                    kind = "update"
                else:
                    parts = self.rng.randint(1, 2)
                    vouchers = [self.rng.randint(100, order.value // (2 * parts)) for _ in range(parts)]
                    order.value -= sum(vouchers)
                    inserts = tuple((order.payments + i, "voucher", 1, v) for i, v in enumerate(vouchers, 1))
                    order.payments += parts
                    yield Op(kind, order.order_id, inserts=inserts, update=(order.installments, order.value))
                    continue
            if kind == "update":
                _, order.installments = self._payment()
                discount = self.rng.randint(1, max(1, min(order.value, order.item_price or 0) // 10))
                if order.item_price is not None and order.item_price > discount and self.rng.random() < 0.5:
                    order.item_price -= discount
                    order.value -= discount
                    yield Op(kind, order.order_id, update=(order.installments, order.value),
                             item_price=order.item_price)
                else:
                    yield Op(kind, order.order_id, update=(order.installments, order.value))
            else:
                del self.recent[idx]
                yield Op(kind, order.order_id, deletes=order.payments)


def segments(ops: Iterable[Op]) -> Iterator[list[Op]]:
    """Consecutive runs of operations touching distinct orders: within one, the order of writes is free."""
    run: list[Op] = []
    seen: set[str] = set()
    for op in ops:
        if op.order_id in seen:
            yield run
            run, seen = [], set()
        run.append(op)
        seen.add(op.order_id)
    if run:
        yield run


def _money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _columns(rows: list[tuple]) -> list[list]:
    return [list(c) for c in zip(*rows, strict=True)]


class Writer:
    """The statements of one segment, one per kind of row change, with the rows passed as arrays."""

    def __init__(self, schema: str) -> None:
        s = sql.Identifier(schema)
        cols = "order_id, payment_sequential, payment_type, payment_installments, payment_value"
        q = lambda text: sql.SQL(text).format(s=s)  # noqa: E731
        self.customers = q("insert into {s}.customers (customer_id, customer_unique_id, customer_zip_code_prefix, "
                           "customer_city, customer_state) select * from unnest(%s::text[], %s::text[], %s::text[], "
                           "%s::text[], %s::text[]) on conflict do nothing")
        # The estimated delivery is a day (midnight), as in the real data.
        self.orders = q("insert into {s}.orders (order_id, customer_id, order_status, order_purchase_timestamp, "
                        "order_estimated_delivery_date) select o, c, 'created', localtimestamp(0), "
                        "date_trunc('day', localtimestamp) + interval '20 days' from unnest(%s::text[], %s::text[]) "
                        "as u(o, c) on conflict do nothing")
        self.items = q("insert into {s}.order_items (order_id, order_item_id, product_id, seller_id, "
                       "shipping_limit_date, price, freight_value) select o, i, p, sl, localtimestamp(0) + interval "
                       "'6 days', pr, f from unnest(%s::text[], %s::int[], %s::text[], %s::text[], %s::numeric[], "
                       "%s::numeric[]) as u(o, i, p, sl, pr, f) on conflict do nothing")
        # Replaying a seed on a database that already saw it replays its operations: inserts become updates.
        self.insert = q(f"insert into {{s}}.order_payments ({cols}) select * from unnest(%s::text[], %s::int[], "
                        "%s::text[], %s::int[], %s::numeric[]) on conflict (order_id, payment_sequential) do update "
                        "set payment_type = excluded.payment_type, payment_installments = "
                        "excluded.payment_installments, payment_value = excluded.payment_value")
        self.update = q("update {s}.order_payments p set payment_installments = u.i, payment_value = u.v "
                        "from unnest(%s::text[], %s::int[], %s::numeric[]) as u(o, i, v) "
                        "where p.order_id = u.o and p.payment_sequential = 1")
        self.discount = q("update {s}.order_items t set price = u.p from unnest(%s::text[], %s::numeric[]) as u(o, p) "
                          "where t.order_id = u.o and t.order_item_id = 1")
        self.approve = q("update {s}.orders set order_status = 'approved', order_approved_at = localtimestamp(0) "
                         "where order_status = 'created' and order_id = any(%s::text[])")
        self.delete = q("delete from {s}.order_payments where order_id = any(%s::text[])")
        self.cancel = q("update {s}.orders set order_status = 'canceled' where order_id = any(%s::text[])")

    def statements(self, ops: list[Op]) -> Iterator[tuple[sql.Composed, list]]:
        by_kind: dict[str, list[Op]] = collections.defaultdict(list)
        for op in ops:
            by_kind[op.kind].append(op)
        if new := by_kind["new_order"]:
            yield self.customers, _columns([op.customer for op in new if op.customer])
            yield self.orders, [[op.order_id for op in new], [op.customer[0] for op in new if op.customer]]
            if items := [(op.order_id, i, p, sl, _money(pr), _money(f)) for op in new for i, p, sl, pr, f in op.items]:
                yield self.items, _columns(items)
        if rows := [(op.order_id, seq, kind, inst, _money(v)) for op in ops for seq, kind, inst, v in op.inserts]:
            yield self.insert, _columns(rows)
        if updates := [(op.order_id, op.update[0], _money(op.update[1])) for op in ops
                       if op.update and op.kind != "delete"]:
            yield self.update, _columns(updates)
        if prices := [(op.order_id, _money(op.item_price)) for op in by_kind["update"] if op.item_price is not None]:
            yield self.discount, _columns(prices)
        if by_kind["update"]:
            yield self.approve, [[op.order_id for op in by_kind["update"]]]
        if by_kind["delete"]:
            ids = [op.order_id for op in by_kind["delete"]]
            yield self.delete, [ids]
            yield self.cancel, [ids]


@dataclass
class SimulationReport:
    target_rate: float
    seconds: float
    changes: int
    operations: collections.Counter
    rows: collections.Counter  # payment rows inserted / updated / deleted
    commits: int = 0
    transactions: set[int] = field(default_factory=set, repr=False)  # their ids, as CDC events carry them

    @property
    def achieved_rate(self) -> float:
        return self.changes / self.seconds if self.seconds else 0.0


def simulate(conninfo: str, schema: str, rate: float, duration: float, seed: int,
             progress: Callable[[int, float], None] | None = None) -> SimulationReport:
    """Commit about ``rate`` payment-row changes per second for ``duration`` seconds."""
    with psycopg.connect(conninfo) as conn:
        profile = Profile.from_database(conn, schema)
        generation = conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(schema, "orders"))
                                  ).fetchone()[0]
        conn.commit()
        plan, writer = iter(Plan(profile, seed, generation)), Writer(schema)
        done, commits, ops, rows = 0, 0, collections.Counter(), collections.Counter()
        transactions: set[int] = set()
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < duration:
            due = int(rate * elapsed) - done
            if due <= 0:
                time.sleep(min(0.005, 1 / rate))
                continue
            batch, changes = [], 0
            while changes < min(due, MAX_BATCH):
                batch.append(op := next(plan))
                changes += op.changes
            # Pipeline mode sends a commit's statements without waiting for each answer.
            with conn.transaction(), conn.cursor() as xid:
                with conn.pipeline(), conn.cursor() as cur:
                    xid.execute(TRANSACTION_ID)  # how CDC events name this transaction (source.txId)
                    for segment in segments(batch):
                        for statement, params in writer.statements(segment):
                            cur.execute(statement, params)
                transactions.add(int(xid.fetchone()[0]))
            for op in batch:
                ops[op.kind] += 1
                rows["insert"] += len(op.inserts)
                rows["update"] += op.update is not None
                rows["delete"] += op.deletes
            done += changes
            commits += 1
            if progress:
                progress(done, elapsed)
        seconds = time.perf_counter() - started
    return SimulationReport(rate, seconds, done, ops, rows, commits, transactions)
