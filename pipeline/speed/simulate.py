"""Live trading mimicked in PostgreSQL: new orders with their payments, voucher splits, updates and rare
deletes, drawn from the loaded data's distributions, at a controlled rate of payment-row changes.

The sequence of operations is fixed by the seed; the clock only decides how many go into each commit.
A commit's operations are written a few statements at a time (one per kind of row change, rows passed as
arrays), cut wherever an order comes back, so every order's changes keep their planned order.
"""

from __future__ import annotations

import collections
import itertools
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from pipeline.contracts import load_registry

# Share of operations by kind; each changes one to three order_payments rows.
MIX = {"new_order": 0.66, "voucher_split": 0.06, "update": 0.25, "delete": 0.03}
MAX_BATCH = 1000  # payment-row changes per transaction at most


@dataclass
class Profile:
    """What new payments look like, read from the loaded table (or the contract when it is empty)."""

    types: list[str]
    type_weights: list[float]
    installments: dict[str, tuple[list[int], list[float]]]  # type -> (values, weights)
    values: list[float]  # a sample of payment values
    places: list[tuple[str, str, str]]  # a sample of customer (zip prefix, city, state)

    @classmethod
    def from_database(cls, conn: psycopg.Connection, schema: str) -> Profile:
        table = sql.Identifier(schema, "order_payments")
        places = [tuple(r) for r in conn.execute(sql.SQL(
            "select customer_zip_code_prefix, customer_city, customer_state from {} order by customer_id limit 5000"
        ).format(sql.Identifier(schema, "customers"))).fetchall()] or [("01001", "sao paulo", "SP")]
        rows = conn.execute(sql.SQL("select payment_type, payment_installments, payment_value::float8 from {} "
                                    "order by order_id, payment_sequential limit 200000").format(table)).fetchall()
        if not rows:
            types = list(load_registry().dataset("order_payments").column("payment_type").enum or ())
            return cls(types, [1.0] * len(types), {t: ([1], [1.0]) for t in types}, [50.0, 100.0, 150.0], places)
        kinds = collections.Counter(r[0] for r in rows)
        types = sorted(kinds)
        inst: dict[str, tuple[list[int], list[float]]] = {}
        for t in types:
            counts = collections.Counter(r[1] for r in rows if r[0] == t)
            keys = sorted(counts)
            inst[t] = (keys, [float(counts[k]) for k in keys])
        return cls(types, [float(kinds[t]) for t in types], inst, [r[2] for r in rows], places)


@dataclass(frozen=True)
class Op:
    """One planned operation on an order: the payment rows it changes (what CDC carries) and the order rows."""

    kind: str
    order_id: str
    customer: tuple[str, str, str, str, str] | None = None  # new orders: (id, unique id, zip, city, state)
    inserts: tuple[tuple[int, str, int, float], ...] = ()  # (sequential, type, installments, value)
    update: tuple[int, float] | None = None  # (installments, value) of payment 1
    deletes: int = 0  # payments 1..n removed

    @property
    def changes(self) -> int:
        """Payment rows this operation changes."""
        return len(self.inserts) + (self.kind in ("update", "voucher_split")) + self.deletes


class Plan:
    """The deterministic sequence of operations for a seed."""

    def __init__(self, profile: Profile, seed: int) -> None:
        self.rng = random.Random(seed)
        self.profile = profile
        self.recent: collections.deque[tuple[str, int]] = collections.deque(maxlen=2000)  # (order_id, payments)
        self.type_cum = list(itertools.accumulate(profile.type_weights))
        self.inst_cum = {t: (v, list(itertools.accumulate(w))) for t, (v, w) in profile.installments.items()}
        self.kinds, self.kind_cum = list(MIX), list(itertools.accumulate(MIX.values()))

    def _id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def _payment(self) -> tuple[str, int, float]:
        kind = self.rng.choices(self.profile.types, cum_weights=self.type_cum)[0]
        values, cum = self.inst_cum[kind]
        installments = self.rng.choices(values, cum_weights=cum)[0]
        return kind, installments, round(self.rng.choice(self.profile.values), 2)

    def __iter__(self) -> Iterator[Op]:
        while True:
            kind = self.rng.choices(self.kinds, cum_weights=self.kind_cum)[0]
            if kind == "new_order" or not self.recent:
                order_id, customer_id = self._id(), self._id()
                zip_code, city, state = self.rng.choice(self.profile.places)
                self.recent.append((order_id, 1))
                yield Op("new_order", order_id, customer=(customer_id, self._id(), zip_code, city, state),
                         inserts=((1, *self._payment()),))
                continue
            idx = self.rng.randrange(len(self.recent))
            order_id, n = self.recent[idx]
            if kind == "voucher_split":
                extra = self.rng.randint(1, 2)
                self.recent[idx] = (order_id, n + extra)
                yield Op(kind, order_id, inserts=tuple((seq, "voucher", 1, round(self.rng.uniform(5, 60), 2))
                                                       for seq in range(n + 1, n + 1 + extra)))
            elif kind == "update":
                _, inst, value = self._payment()
                yield Op(kind, order_id, update=(inst, value))
            else:
                del self.recent[idx]
                yield Op(kind, order_id, deletes=n)


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


class Writer:
    """The statements of one segment, one per kind of row change, with the rows passed as arrays."""

    def __init__(self, schema: str) -> None:
        s = sql.Identifier(schema)
        cols = "order_id, payment_sequential, payment_type, payment_installments, payment_value"
        q = lambda text: sql.SQL(text).format(s=s)  # noqa: E731
        self.customers = q("insert into {s}.customers (customer_id, customer_unique_id, customer_zip_code_prefix, "
                           "customer_city, customer_state) select * from unnest(%s::text[], %s::text[], %s::text[], "
                           "%s::text[], %s::text[]) on conflict do nothing")
        self.orders = q("insert into {s}.orders (order_id, customer_id, order_status, order_purchase_timestamp, "
                        "order_estimated_delivery_date) select o, c, 'created', localtimestamp(0), "
                        "localtimestamp(0) + interval '20 days' from unnest(%s::text[], %s::text[]) as u(o, c) "
                        "on conflict do nothing")
        # Replaying a seed on a database that already saw it replays its operations: inserts become updates.
        self.insert = q(f"insert into {{s}}.order_payments ({cols}) select * from unnest(%s::text[], %s::int[], "
                        "%s::text[], %s::int[], %s::numeric[]) on conflict (order_id, payment_sequential) do update "
                        "set payment_type = excluded.payment_type, payment_installments = "
                        "excluded.payment_installments, payment_value = excluded.payment_value")
        self.split = q("update {s}.order_payments set payment_value = round(payment_value * 0.7, 2) "
                       "where payment_sequential = 1 and order_id = any(%s::text[])")
        self.update = q("update {s}.order_payments p set payment_installments = u.i, payment_value = u.v "
                        "from unnest(%s::text[], %s::int[], %s::numeric[]) as u(o, i, v) "
                        "where p.order_id = u.o and p.payment_sequential = 1")
        self.approve = q("update {s}.orders set order_status = 'approved', order_approved_at = localtimestamp(0) "
                         "where order_status = 'created' and order_id = any(%s::text[])")
        self.delete = q("delete from {s}.order_payments where order_id = any(%s::text[])")
        self.cancel = q("update {s}.orders set order_status = 'canceled' where order_id = any(%s::text[])")

    def statements(self, ops: list[Op]) -> Iterator[tuple[sql.Composed, list]]:
        by_kind: dict[str, list[Op]] = collections.defaultdict(list)
        for op in ops:
            by_kind[op.kind].append(op)
        new = by_kind["new_order"]
        if new:
            yield self.customers, [list(c) for c in zip(*(op.customer for op in new), strict=True)]
            yield self.orders, [[op.order_id for op in new], [op.customer[0] for op in new]]
        rows = [(op.order_id, *row) for op in ops for row in op.inserts]
        if rows:
            yield self.insert, [list(c) for c in zip(*rows, strict=True)]
        if by_kind["voucher_split"]:
            yield self.split, [[op.order_id for op in by_kind["voucher_split"]]]
        if by_kind["update"]:
            updates = [(op.order_id, *op.update) for op in by_kind["update"]]
            yield self.update, [list(c) for c in zip(*updates, strict=True)]
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

    @property
    def achieved_rate(self) -> float:
        return self.changes / self.seconds if self.seconds else 0.0


def simulate(conninfo: str, schema: str, rate: float, duration: float, seed: int,
             progress: Callable[[int, float], None] | None = None) -> SimulationReport:
    """Commit about ``rate`` payment-row changes per second for ``duration`` seconds."""
    with psycopg.connect(conninfo) as conn:
        profile = Profile.from_database(conn, schema)
        conn.commit()
        plan, writer = iter(Plan(profile, seed)), Writer(schema)
        done, commits, ops, rows = 0, 0, collections.Counter(), collections.Counter()
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
            with conn.transaction(), conn.pipeline(), conn.cursor() as cur:
                for segment in segments(batch):
                    for statement, params in writer.statements(segment):
                        cur.execute(statement, params)
            for op in batch:
                ops[op.kind] += 1
                rows["insert"] += len(op.inserts)
                rows["update"] += op.kind in ("update", "voucher_split")
                rows["delete"] += op.deletes
            done += changes
            commits += 1
            if progress:
                progress(done, elapsed)
        seconds = time.perf_counter() - started
    return SimulationReport(rate, seconds, done, ops, rows, commits)
