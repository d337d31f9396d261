"""Cassandra converged to the contracts: the serving keyspace (replicas only ever raised), one table per windowed
topic, a column added where a contract gained one, and the sink's and the reader's grants."""

from __future__ import annotations

from collections.abc import Mapping

from cassandra.cluster import Session

from emulation.resources import engine
from pipeline.contracts import Registry, load_registry, stream_names
from pipeline.contracts.render_cassandra import LOCAL_REPLICATION, render_cassandra, replication_cql, serving_tables
from pipeline.provision.steps import Step
from pipeline.settings import Settings


def deployment_replication(settings: Settings) -> dict[str, int]:
    """The serving keyspace's replicas the deployment asks for: ``replication_factor`` in ``local_dc``."""
    return {settings.cassandra.local_dc: settings.cassandra.replication_factor}


def apply_schema(session: Session, keyspace: str | None = None, replication: Mapping[str, int] | None = None) -> int:
    """Create the keyspace (with ``replication``, replicas per datacenter; the local node's by default) and the
    serving tables, and grant the sink and the reader their part (idempotent; an admin's session). An existing
    keyspace is only ever given more: a datacenter asked for with more replicas than it has is raised to them
    (other datacenters and their counts are kept; existing rows reach the new replicas with a repair, which is the
    operator's); one left by SimpleStrategy becomes NetworkTopologyStrategy. Returns how many statements ran."""
    from emulation.cassandra import serving_grants, split_statements

    wanted = dict(replication or LOCAL_REPLICATION)
    keyspace = keyspace or stream_names().keyspace
    statements = split_statements(render_cassandra(load_registry(), keyspace, wanted))
    for statement in statements:
        session.execute(statement, timeout=60)
    row = session.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
                          (keyspace,)).one()
    current = dict(row.replication) if row else {}
    strategy = current.pop("class", "")
    if strategy.endswith("SimpleStrategy"):  # one count for the whole cluster: keep it for each datacenter asked
        have = dict.fromkeys(wanted, int(current.get("replication_factor", 1)))
    else:
        have = {dc: int(n) for dc, n in current.items()}
    more = have | {dc: n for dc, n in wanted.items() if n > have.get(dc, 0)}
    if more != have or not strategy.endswith("NetworkTopologyStrategy"):
        session.execute(f"ALTER KEYSPACE {keyspace} WITH replication = {replication_cql(more)}", timeout=60)
        statements.append("alter keyspace")
    for grant in serving_grants(keyspace):
        session.execute(grant, timeout=60)
    return len(statements)


def plan(settings: Settings, registry: Registry | None = None) -> list[Step]:

    registry = registry or load_registry()
    keyspace = registry.keyspace
    replication = deployment_replication(settings)
    service = engine("cassandra", settings)
    steps: list[Step] = []

    def create() -> None:
        with service.session(role="admin") as session:
            apply_schema(session, keyspace, replication)

    with service.session(role="admin") as session:
        row = session.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
                              (keyspace,)).one()
        columns: dict[str, dict[str, str]] = {}
        for r in session.execute("SELECT table_name, column_name, type FROM system_schema.columns "
                                 "WHERE keyspace_name = %s", (keyspace,)):
            columns.setdefault(r.table_name, {})[r.column_name] = r.type
    tables = serving_tables(registry, keyspace)
    current = {k: v for k, v in dict(row.replication).items() if k != "class"} if row else {}
    short = {dc: n for dc, n in replication.items() if int(current.get(dc, current.get("replication_factor", 0))) < n}
    missing = [t.name for t in tables if t.name not in columns]
    if row is None or missing or short:
        what = ("create the keyspace" if row is None else
                f"create table {', '.join(missing)}" if missing else
                "raise replicas " + ", ".join(f"{dc} -> {n}" for dc, n in short.items()))
        steps.append(Step("cassandra", keyspace, f"{what}; grant the sink and the reader", creates=True, run=create))
    for table in tables:
        have = columns.get(table.name)
        if have is None:
            continue
        target = f"{keyspace}.{table.name}"
        for col in table.columns:
            if col.name not in have:
                steps.append(Step("cassandra", target, f"add column {col.name} {col.type}", blocks=True,
                                  detail="rows written before it hold null until their window is written again",
                                  run=_alter(service, f"ALTER TABLE {target} ADD {col.name} {col.type}")))
            elif have[col.name].lower() != col.type.lower():
                steps.append(Step("cassandra", target, f"change column {col.name} {have[col.name]} -> {col.type}",
                                  "breaking", blocks=True,
                                  detail=f"contract of topic {table.topic}: Cassandra cannot change a column's type; "
                                         "a new table (a new major version of the topic) beside the old"))
        for name in sorted(have.keys() - {c.name for c in table.columns}):
            steps.append(Step("cassandra", target, f"column {name} is not in the contract", "breaking", blocks=True,
                              detail=f"contract of topic {table.topic}: a removed column breaks its readers; keep it "
                                     "or publish a new major version beside the old"))
    return steps


def _alter(service, statement: str):
    def run() -> None:
        with service.session(role="admin") as session:
            session.execute(statement, timeout=60)

    return run
