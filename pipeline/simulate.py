"""Live trading mimicked in PostgreSQL: new orders with their payments, voucher splits, updates and rare
deletes, drawn from the loaded data's distributions, at a controlled rate of payment-row changes.

The sequence of operations is fixed by the seed; the clock only decides how many go into each commit.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import psycopg
from psycopg import sql

from pipeline.contracts import load_registry

# Share of operations by kind; each changes one to three order_payments rows.
MIX = {"new_order": 0.66, "voucher_split": 0.06, "update": 0.25, "delete": 0.03}
MAX_BATCH = 500  # changes per transaction at most


@dataclass
class Profile:
    """What new payments look like, read from the loaded table (or the contract when it is empty)."""

    types: list[str]
    type_weights: np.ndarray
    installments: dict[str, tuple[np.ndarray, np.ndarray]]  # type -> (values, weights)
    values: np.ndarray  # a sample of payment values
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
            return cls(types, np.full(len(types), 1 / len(types)), {t: (np.array([1]), np.array([1.0])) for t in types},
                       np.array([50.0, 100.0, 150.0]), places)
        kinds = collections.Counter(r[0] for r in rows)
        types = sorted(kinds)
        weights = np.array([kinds[t] for t in types], dtype=float)
        inst: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for t in types:
            counts = collections.Counter(r[1] for r in rows if r[0] == t)
            keys = sorted(counts)
            w = np.array([counts[k] for k in keys], dtype=float)
            inst[t] = (np.array(keys), w / w.sum())
        return cls(types, weights / weights.sum(), inst, np.array([r[2] for r in rows]), places)


@dataclass
class Change:
    """One planned operation: the payment rows it changes (what CDC carries) and the order rows around it."""

    kind: str
    order_id: str
    statements: list[tuple[str, tuple]] = field(default_factory=list)
    context: list[tuple[str, tuple]] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return len(self.statements)


class Plan:
    """The deterministic sequence of operations for a seed."""

    def __init__(self, profile: Profile, seed: int, schema: str) -> None:
        self.rng = np.random.default_rng(seed)
        self.profile = profile
        self.schema = schema
        self.recent: collections.deque[tuple[str, int]] = collections.deque(maxlen=2000)  # (order_id, payments)
        self.kinds = list(MIX)
        self.kind_weights = np.array(list(MIX.values()))

    def _id(self) -> str:
        return self.rng.bytes(16).hex()

    def _payment(self) -> tuple[str, int, float]:
        p = self.profile
        kind = str(self.rng.choice(p.types, p=p.type_weights))
        values, weights = p.installments[kind]
        installments = int(self.rng.choice(values, p=weights))
        value = round(float(self.rng.choice(p.values)), 2)
        return kind, installments, value

    def __iter__(self) -> Iterator[Change]:
        t = f"{self.schema}.order_payments"
        insert = f"insert into {t} (order_id, payment_sequential, payment_type, payment_installments, payment_value) "
        orders, customers = f"{self.schema}.orders", f"{self.schema}.customers"
        # Replaying a seed on a database that already saw it replays its operations: inserts become updates.
        upsert = (" on conflict (order_id, payment_sequential) do update set payment_type = excluded.payment_type,"
                  " payment_installments = excluded.payment_installments, payment_value = excluded.payment_value")
        while True:
            kind = str(self.rng.choice(self.kinds, p=self.kind_weights))
            if kind != "new_order" and not self.recent:
                kind = "new_order"
            if kind == "new_order":
                order_id = self._id()
                ptype, inst, value = self._payment()
                self.recent.append((order_id, 1))
                customer_id = self._id()
                zip_code, city, state = self.profile.places[int(self.rng.integers(len(self.profile.places)))]
                context = [
                    (f"insert into {customers} (customer_id, customer_unique_id, customer_zip_code_prefix, "
                     "customer_city, customer_state) values (%s, %s, %s, %s, %s) on conflict do nothing",
                     (customer_id, self._id(), zip_code, city, state)),
                    (f"insert into {orders} (order_id, customer_id, order_status, order_purchase_timestamp, "
                     "order_estimated_delivery_date) values (%s, %s, 'created', localtimestamp(0), "
                     "localtimestamp(0) + interval '20 days') on conflict do nothing", (order_id, customer_id)),
                ]
                yield Change(kind, order_id, [(insert + "values (%s, 1, %s, %s, %s)" + upsert,
                                               (order_id, ptype, inst, value))], context)
                continue
            idx = int(self.rng.integers(len(self.recent)))
            order_id, n = self.recent[idx]
            if kind == "voucher_split":
                extra = int(self.rng.integers(1, 3))
                stmts = [(f"update {t} set payment_value = round(payment_value * 0.7, 2) "
                          f"where order_id = %s and payment_sequential = 1", (order_id,))]
                for seq in range(n + 1, n + 1 + extra):
                    stmts.append((insert + "values (%s, %s, 'voucher', 1, %s)" + upsert,
                                  (order_id, seq, round(float(self.rng.uniform(5, 60)), 2))))
                self.recent[idx] = (order_id, n + extra)
                yield Change(kind, order_id, stmts)
            elif kind == "update":
                _, inst, value = self._payment()
                yield Change(kind, order_id, [(f"update {t} set payment_installments = %s, payment_value = %s "
                                               f"where order_id = %s and payment_sequential = 1",
                                               (inst, value, order_id))],
                             [(f"update {orders} set order_status = 'approved', order_approved_at = "
                               "localtimestamp(0) where order_id = %s and order_status = 'created'", (order_id,))])
            else:
                del self.recent[idx]
                yield Change(kind, order_id, [(f"delete from {t} where order_id = %s and payment_sequential = %s",
                                               (order_id, seq)) for seq in range(1, n + 1)],
                             [(f"update {orders} set order_status = 'canceled' where order_id = %s", (order_id,))])


@dataclass
class SimulationReport:
    target_rate: float
    seconds: float
    changes: int
    operations: collections.Counter
    rows: collections.Counter  # payment rows inserted / updated / deleted

    @property
    def achieved_rate(self) -> float:
        return self.changes / self.seconds if self.seconds else 0.0


def simulate(conninfo: str, schema: str, rate: float, duration: float, seed: int,
             progress: Callable[[int, float], None] | None = None) -> SimulationReport:
    """Commit about ``rate`` payment-row changes per second for ``duration`` seconds."""
    with psycopg.connect(conninfo) as conn:
        profile = Profile.from_database(conn, schema)
        conn.commit()
        plan = iter(Plan(profile, seed, schema))
        done, ops, rows = 0, collections.Counter(), collections.Counter()
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < duration:
            due = int(rate * elapsed) - done
            if due <= 0:
                time.sleep(min(0.005, 1 / rate))
                continue
            batch = []
            while sum(c.changes for c in batch) < min(due, MAX_BATCH):
                batch.append(next(plan))
            # Pipeline mode sends a batch's statements without waiting for each answer.
            with conn.transaction(), conn.pipeline(), conn.cursor() as cur:
                for change in batch:
                    for statement, params in [*change.context, *change.statements]:
                        cur.execute(statement, params)
                    for statement, _ in change.statements:
                        rows[statement.split()[0]] += 1  # each payment statement touches exactly one row
                    ops[change.kind] += 1
            done += sum(c.changes for c in batch)
            if progress:
                progress(done, elapsed)
        seconds = time.perf_counter() - started
    return SimulationReport(rate, seconds, done, ops, rows)

