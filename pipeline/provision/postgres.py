"""PostgreSQL converged to the contracts: the schema, its functions, every contract table (columns, types, NOT NULL,
CHECKs, change tracking, comments) and, once CDC is set up, the publication, replica identity and the CDC role's grants.

What is wanted is read from PostgreSQL itself: each table's contract DDL is created as a temporary table in a
transaction that is rolled back, so the deployed and the wanted catalogs are compared in PostgreSQL's own words
(``format_type``, ``pg_get_constraintdef``) and never by parsing DDL by hand."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pipeline.contracts import Dataset, Registry, load_registry
from pipeline.contracts.render_postgres import (
    CHANGE_COLUMN,
    TOUCH_FUNCTION,
    change_tracking,
    column_checks,
    column_comment,
    column_definition,
    postgres_tables,
    quote_literal,
    table_ddl,
)
from pipeline.provision.steps import Step
from pipeline.provision.steps import converge as make_missing

# How a step gets its connection: psycopg.connect(conninfo), or a caller's connection kept open (nullcontext).
Connect = Callable[[], contextlib.AbstractContextManager[psycopg.Connection]]

CDC_USER = "olist_cdc"
CONNECTOR_CONFIG = Path(__file__).resolve().parents[1] / "speed" / "cdc" / "debezium-order-payments.json"


@dataclass(frozen=True)
class ColumnState:
    type: str  # format_type: character varying(16), numeric(10,2), timestamp without time zone ...
    not_null: bool
    checks: tuple[tuple[str, str], ...]  # (constraint name, pg_get_constraintdef) of the CHECKs on this column alone
    comment: str | None

    @property
    def check_defs(self) -> tuple[str, ...]:
        return tuple(sorted(d for _, d in self.checks))


@dataclass
class TableState:
    columns: dict[str, ColumnState]
    comment: str | None = None
    triggers: set[str] = field(default_factory=set)
    indexes: set[str] = field(default_factory=set)
    replica_full: bool = False


CATALOG = """
select a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, col_description(a.attrelid, a.attnum),
       coalesce((select array_agg(array[c.conname::text, pg_get_constraintdef(c.oid)] order by c.conname)
                 from pg_constraint c
                 where c.conrelid = a.attrelid and c.contype = 'c' and c.conkey = array[a.attnum]), '{}')
from pg_attribute a
where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""


def captured_tables(registry: Registry) -> list[str]:
    """The tables whose rows a CDC topic carries (its envelope's ``rowOf``)."""
    return sorted({c.row_of for ds in registry.topics() for c in ds.columns if c.row_of})


def publication_name() -> str:
    return json.loads(CONNECTOR_CONFIG.read_text())["publication.name"]


def read_table(conn: psycopg.Connection, relation: str) -> TableState:
    rows = conn.execute(CATALOG, (relation,)).fetchall()
    columns = {name: ColumnState(typ, not_null, tuple((c[0], c[1]) for c in checks), comment)
               for name, typ, not_null, comment, checks in rows}
    extra = conn.execute(
        "select obj_description(%s::regclass, 'pg_class'), "
        "array(select tgname::text from pg_trigger where tgrelid = %s::regclass and not tgisinternal), "
        "array(select relname::text from pg_index i join pg_class c on c.oid = i.indexrelid "
        "      where i.indrelid = %s::regclass), "
        "(select relreplident = 'f' from pg_class where oid = %s::regclass)",
        (relation,) * 4).fetchone()
    return TableState(columns, extra[0], set(extra[1]), set(extra[2]), bool(extra[3]))


def wanted_table(conn: psycopg.Connection, ds: Dataset) -> TableState:
    """The contract's columns as PostgreSQL would hold them (a temporary table; the caller rolls back)."""
    name = f"_want_{ds.physical_name}"
    cols = [column_definition(c) for c in ds.columns]
    if ds.source_file:
        cols.append(f"{CHANGE_COLUMN} timestamptz NOT NULL DEFAULT now()")
    conn.execute(f"CREATE TEMP TABLE {name} ({', '.join(cols)})")
    state = read_table(conn, name)
    state.columns = {k: ColumnState(v.type, v.not_null, v.checks,
                                    ds.column(k).description or None if k != CHANGE_COLUMN else None)
                     for k, v in state.columns.items()}
    state.comment = ds.description or None
    return state


# -- type and check widening -----------------------------------------------------------------------

_INTS = ["smallint", "integer", "bigint"]
_FLOATS = ["real", "double precision"]


def widens(old: str, new: str) -> bool:
    """Whether every value of type ``old`` fits type ``new`` (so ALTER COLUMN TYPE keeps every row as it is)."""
    if old == new:
        return True
    varchar = re.compile(r"character varying(?:\((\d+)\))?")
    if (o := varchar.fullmatch(old)) and (new == "text" or (n := varchar.fullmatch(new))):
        return new == "text" or n.group(1) is None or (o.group(1) is not None and int(n.group(1)) >= int(o.group(1)))
    if old in _INTS and new in _INTS:
        return _INTS.index(new) >= _INTS.index(old)
    if old in _FLOATS and new in _FLOATS:
        return _FLOATS.index(new) >= _FLOATS.index(old)
    numeric = re.compile(r"numeric\((\d+),(\d+)\)")
    if (o := numeric.fullmatch(old)) and (n := numeric.fullmatch(new)):
        (op, os_), (np_, ns) = map(int, o.groups()), map(int, n.groups())
        return ns >= os_ and np_ - ns >= op - os_
    return old != "text" and new == "text" and old.startswith("character")


_VALUE = re.compile(r"'((?:[^']|'')*)'::")
_BOUND = re.compile(r"(>=|<=)\s*\(?'?([^')]+?)'?(?:\)?::[a-z ]+)?\)")


def _bounds(defs: tuple[str, ...]) -> dict[str, str]:
    return {op: value.strip() for d in defs for op, value in _BOUND.findall(d)}


def _as_number(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def check_widens(old: tuple[str, ...], new: tuple[str, ...]) -> bool:
    """Whether the new CHECKs of a column allow every value the old ones did: an enum that only gains values, a range
    that only grows (the forms ``column_checks`` writes)."""
    old_values = {v for d in old for v in _VALUE.findall(d)}
    new_values = {v for d in new for v in _VALUE.findall(d)}
    if (new_values and not old_values <= new_values) or (new_values and not old_values):  # a value gone, or an enum new
        return False
    old_bounds, new_bounds = _bounds(old), _bounds(new)
    for op, value in new_bounds.items():
        if op not in old_bounds:
            return False
        a, b = _as_number(old_bounds[op]), _as_number(value)
        if type(a) is not type(b) or (op == ">=" and b > a) or (op == "<=" and b < a):  # type: ignore[operator]
            return False
    return True


# -- the plan --------------------------------------------------------------------------------------


def connector(conninfo: str) -> Connect:
    return lambda: psycopg.connect(conninfo)


def plan(connect: Connect, schema: str, registry: Registry | None = None, cdc: bool | None = None) -> list[Step]:
    """Every step that brings the deployed schema to the contracts, parents before children; with ``cdc`` (None:
    when the publication already captures a table of this schema) also CDC's row images, grants and publication."""
    registry = registry or load_registry()
    tables = registry.load_order(postgres_tables(registry))
    with connect() as conn, conn.transaction(force_rollback=True):  # the wanted tables are temporary: rolled back
        deployed: dict[str, TableState] = {}
        has_schema = conn.execute("select 1 from pg_namespace where nspname = %s", (schema,)).fetchone() is not None
        functions = {r[0] for r in conn.execute(
            "select proname::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace where nspname = %s",
            (schema,))}
        for ds in tables:
            relation = f"{schema}.{ds.physical_name}"
            if conn.execute("select to_regclass(%s)", (relation,)).fetchone()[0] is not None:
                deployed[ds.name] = read_table(conn, relation)
        wanted = {ds.name: wanted_table(conn, ds) for ds in tables}
        cdc_wanted, cdc = cdc, _cdc_state(conn, schema, captured_tables(registry))

    steps: list[Step] = []
    run = _runner(connect)
    if not has_schema or not {"touch_changed_at", "record_deletion"} <= functions:
        steps.append(Step("postgres", schema, "create the schema and its change-tracking functions", creates=True,
                          run=run(f"CREATE SCHEMA IF NOT EXISTS {schema};", TOUCH_FUNCTION.format(schema=schema))))
    for ds in tables:
        target = f"{schema}.{ds.physical_name}"
        if ds.name not in deployed:
            steps.append(Step("postgres", target, f"create table ({len(ds.columns)} columns, contract "
                              f"{ds.contract_id} {ds.version})", creates=True, run=run(table_ddl(ds, schema))))
            continue
        steps += _table_steps(ds, target, deployed[ds.name], wanted[ds.name], schema, run)
    if cdc_wanted if cdc_wanted is not None else bool(cdc.publication):
        steps += _cdc_steps(cdc, schema, captured_tables(registry), run)
    return steps


def _table_steps(ds: Dataset, target: str, have: TableState, want: TableState, schema: str,
                 run: Callable[..., Callable[[], None]]) -> list[Step]:
    steps: list[Step] = []
    contract = f"contract {ds.contract_id} {ds.version} ({ds.path.name})"
    for name, col in want.columns.items():
        now = have.columns.get(name)
        if now is None:
            definition = column_definition(ds.column(name))
            if col.not_null:
                steps.append(Step("postgres", target, f"add required column {definition}", "breaking", blocks=True,
                                  detail=f"{contract}: existing rows have no value for a required column; add it "
                                         "optional, backfill it, then make it required in a later version"))
                continue
            comment = [column_comment(ds, schema, ds.column(name))] if col.comment else []
            steps.append(Step("postgres", target, f"add column {definition}", blocks=True,
                              run=run(f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {definition};", *comment)))
            continue
        if now.type != col.type:
            if widens(now.type, col.type):
                steps.append(Step("postgres", target, f"widen column {name} {now.type} -> {col.type}", blocks=True,
                                  run=run(f"ALTER TABLE {target} ALTER COLUMN {name} TYPE {col.type};")))
            else:
                steps.append(Step("postgres", target, f"change column {name} {now.type} -> {col.type}", "breaking",
                                  blocks=True,
                                  detail=f"{contract}: a narrowed or changed type may not hold the rows it has; "
                                         "publish a new major version beside the old and migrate readers to it"))
        if now.not_null and not col.not_null:
            steps.append(Step("postgres", target, f"make column {name} optional",
                              run=run(f"ALTER TABLE {target} ALTER COLUMN {name} DROP NOT NULL;")))
        elif col.not_null and not now.not_null:
            steps.append(Step("postgres", target, f"make column {name} required", "backfill",
                              detail=f"{contract}: rows without a {name} must be given one first (UPDATE ... SET "
                                     f"{name} = ...), then `olist apply` sets NOT NULL"))
        if now.check_defs != col.check_defs:
            steps.append(_check_step(ds, target, name, now, col, contract, run))
        if col.comment != now.comment and col.comment:
            steps.append(Step("postgres", target, f"comment on column {name}",
                              run=run(column_comment(ds, schema, ds.column(name)))))
    for name in have.columns.keys() - want.columns.keys():
        steps.append(Step("postgres", target, f"column {name} is not in the contract", "breaking", blocks=True,
                          detail=f"{contract}: a removed or renamed column breaks its readers; keep it (deprecated) "
                                 "or publish a new major version beside the old and migrate readers to it"))
    tracking = change_tracking(ds, schema)
    wanted_names = [re.search(r"(?:INDEX IF NOT EXISTS|TRIGGER) (\S+)", s).group(1) for s in tracking]  # type: ignore[union-attr]
    missing = [s for s, n in zip(tracking, wanted_names, strict=True) if n not in have.triggers | have.indexes]
    if missing:
        steps.append(Step("postgres", target, "add change tracking (" + ", ".join(
            n for s, n in zip(tracking, wanted_names, strict=True) if s in missing) + ")", creates=True,
            run=run(*missing)))
    if want.comment and want.comment != have.comment:
        steps.append(Step("postgres", target, "comment on table",
                          run=run(f"COMMENT ON TABLE {target} IS {quote_literal(want.comment)};")))
    return steps


def _check_step(ds: Dataset, target: str, name: str, now: ColumnState, col: ColumnState, contract: str,
                run: Callable[..., Callable[[], None]]) -> Step:
    drops = [f"ALTER TABLE {target} DROP CONSTRAINT IF EXISTS {conname};" for conname, _ in now.checks]
    # The contract's own CHECK text, as CREATE TABLE writes it (PostgreSQL's deparsed text, fed back, deparses
    # differently); NOT VALID then VALIDATE: rows are checked without blocking writers for the scan.
    conname = f"{ds.physical_name}_{name}_check"
    checks = column_checks(ds.column(name))
    adds = [f"ALTER TABLE {target} ADD CONSTRAINT {conname} CHECK ({' AND '.join(checks)}) NOT VALID;",
            f"ALTER TABLE {target} VALIDATE CONSTRAINT {conname};"] if checks else []
    old_values = sorted(set(_VALUE.findall(" ".join(now.check_defs))))
    new_values = sorted(set(_VALUE.findall(" ".join(col.check_defs))))
    what = (f"allow {', '.join(repr(v) for v in new_values if v not in old_values)} in {name}"
            if new_values and set(old_values) < set(new_values) else f"replace the CHECK of column {name}")
    if check_widens(now.check_defs, col.check_defs):
        return Step("postgres", target, what, run=run(*drops, *adds))
    return Step("postgres", target, f"narrow the CHECK of column {name}", "breaking",
                detail=f"{contract}: a removed enum value or a narrowed range refuses rows it held; publish a new "
                       "major version beside the old")


@dataclass
class CdcState:
    role: bool
    publication: set[str] | None  # the schema's tables it publishes; None when there is none
    replica_full: set[str]
    granted: set[str]


def _cdc_state(conn: psycopg.Connection, schema: str, tables: list[str]) -> CdcState:
    role = conn.execute("select 1 from pg_roles where rolname = %s", (CDC_USER,)).fetchone() is not None
    pub = publication_name()
    published = None
    if conn.execute("select 1 from pg_publication where pubname = %s", (pub,)).fetchone():
        published = {r[0] for r in conn.execute(
            "select tablename::text from pg_publication_tables where pubname = %s and schemaname = %s", (pub, schema))}
    full, granted = set(), set()
    for t in tables:
        rel = conn.execute("select to_regclass(%s)", (f"{schema}.{t}",)).fetchone()[0]
        if rel is None:
            continue
        if conn.execute("select relreplident = 'f' from pg_class where oid = %s::regclass",
                        (f"{schema}.{t}",)).fetchone()[0]:
            full.add(t)
        privilege = "select has_table_privilege(%s, %s, 'SELECT')"
        if role and conn.execute(privilege, (CDC_USER, f"{schema}.{t}")).fetchone()[0]:
            granted.add(t)
    return CdcState(role, published, full, granted)


def _cdc_steps(state: CdcState, schema: str, tables: list[str], run: Callable[..., Callable[[], None]]) -> list[Step]:
    """Once the CDC role exists (`olist cdc up` makes it): full row images, its grants, the publication."""
    if not state.role:
        return []
    steps = []
    user = CDC_USER
    grants = [t for t in tables if t not in state.granted]
    if grants:
        steps.append(Step("postgres", f"role {user}", f"grant usage on {schema}, select on {', '.join(grants)}",
                          creates=True, run=run(f"GRANT USAGE ON SCHEMA {schema} TO {user};", *(
                              f"GRANT SELECT ON {schema}.{t} TO {user};" for t in grants))))
    for t in tables:
        if t not in state.replica_full:
            steps.append(Step("postgres", f"{schema}.{t}", "replica identity full (whole row images for CDC)",
                              creates=True, run=run(f"ALTER TABLE {schema}.{t} REPLICA IDENTITY FULL;")))
    pub = publication_name()
    names = ", ".join(f"{schema}.{t}" for t in tables)
    if state.publication is None:
        steps.append(Step("postgres", f"publication {pub}", f"create for {names}", creates=True,
                          run=run(f"CREATE PUBLICATION {pub} FOR TABLE {names};")))
    elif missing := [t for t in tables if t not in state.publication]:
        steps.append(Step("postgres", f"publication {pub}", f"add table {', '.join(missing)}", creates=True,
                          detail="its rows are captured from the next change on; existing rows are not snapshotted",
                          run=run(f"ALTER PUBLICATION {pub} ADD TABLE {', '.join(f'{schema}.{t}' for t in missing)};")))
    return steps


def _runner(connect: Connect) -> Callable[..., Callable[[], None]]:
    """A step's action: its statements in one transaction (DDL in PostgreSQL is transactional, so a step killed
    half-way leaves nothing half-done)."""

    def run(*statements: str) -> Callable[[], None]:
        def apply() -> None:
            with connect() as conn, conn.transaction():
                for statement in statements:
                    conn.execute(statement)  # type: ignore[arg-type]

        return apply

    return run


def converge(connect: Connect, schema: str, registry: Registry | None = None, cdc: bool | None = None) -> list[Step]:
    """Make what is missing (the schema, a table, CDC's grants and publication) and return those steps; raise
    :class:`PendingChange` when a column is behind its contract (`olist apply` changes it)."""
    return make_missing(lambda: plan(connect, schema, registry, cdc))
