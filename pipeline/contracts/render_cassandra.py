"""CQL for the serving tables in Cassandra, generated from the windowed topic contracts.

A topic whose contract carries ``cassandraPartitionKey`` gets one table in the ``olist_streaming`` keyspace,
named after the topic, with every contract field typed for CQL, plus:

* ``cassandraDayColumn`` ``{name, of}``: a ``date`` column holding the UTC day of a timestamp field (so a
  partition is one day of one payment type, and "the last N minutes" reads a handful of partitions);
* ``cassandraPartitionKey`` and ``cassandraClustering`` (``column [asc|desc]``, in order): the primary key;
  every field of the contract's own key must be in it, so an upsert of a record replaces that record's row
  and a replay never counts twice;
* ``cassandraTableOptions``: table options (``default_time_to_live`` ...);
* ``updated_at``: when the sink last wrote the row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.contracts.registry import Column, ContractError, Dataset, Registry
from pipeline.settings import LOCAL_DC, replication_cql

HEADER = "-- Generated from contracts/ by `olist contracts generate`. Do not edit by hand.\n"
UPDATED_COLUMN = "updated_at"

_PHYSICAL = {"bigint": "bigint", "int": "int", "integer": "int", "smallint": "smallint", "double": "double",
             "float": "double", "real": "float", "boolean": "boolean", "date": "date", "text": "text",
             "string": "text", "uuid": "uuid"}
_LOGICAL = {"integer": "bigint", "number": "double", "boolean": "boolean", "date": "date",
            "timestamp": "timestamp", "string": "text"}


def cql_type(col: Column) -> str:
    """The CQL type of a contract field: timestamp(3) -> timestamp, decimal(p,s) -> decimal, string -> text ..."""
    physical = col.physical_type.lower().strip()
    if re.fullmatch(r"(?:numeric|decimal)(?:\(\d+,\s*\d+\))?", physical):
        return "decimal"
    if re.fullmatch(r"timestamp(?:tz)?(?:\(\d\))?(?: with(?:out)? time zone)?", physical):
        return "timestamp"
    if re.fullmatch(r"(?:varchar|char)(?:\(\d+\))?", physical):
        return "text"
    if physical in _PHYSICAL:
        return _PHYSICAL[physical]
    if col.logical_type in _LOGICAL:
        return _LOGICAL[col.logical_type]
    raise ContractError(f"field {col.name}: no CQL type for {col.logical_type}/{col.physical_type}")


@dataclass(frozen=True)
class CqlColumn:
    name: str
    type: str
    source: str | None = None  # the contract field this column is derived from (the day column)


@dataclass(frozen=True)
class CassandraTable:
    """One serving table: what the DDL says and what the sink writes."""

    keyspace: str
    name: str
    topic: str
    columns: tuple[CqlColumn, ...]
    partition_key: tuple[str, ...]
    clustering: tuple[tuple[str, str], ...]  # (column, "ASC"|"DESC")
    options: tuple[tuple[str, object], ...] = ()
    comment: str = ""

    @property
    def qualified_name(self) -> str:
        return f"{self.keyspace}.{self.name}"

    @property
    def primary_key(self) -> list[str]:
        return [*self.partition_key, *(c for c, _ in self.clustering)]

    @property
    def day_column(self) -> CqlColumn | None:
        return next((c for c in self.columns if c.source), None)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def insert_cql(self) -> str:
        """The upsert of one row (every column bound, in :attr:`columns` order)."""
        names = self.column_names
        return (f"INSERT INTO {self.qualified_name} ({', '.join(names)}) "
                f"VALUES ({', '.join('?' for _ in names)})")


    def delete_cql(self) -> str:
        """The removal of one row by its whole primary key (bound in :attr:`primary_key` order)."""
        return f"DELETE FROM {self.qualified_name} WHERE {' AND '.join(f'{k} = ?' for k in self.primary_key)}"


def _clustering(spec: object, ds: Dataset) -> tuple[tuple[str, str], ...]:
    if not isinstance(spec, list):
        raise ContractError(f"{ds.name}: cassandraClustering must be a list of 'column [asc|desc]'")
    out = []
    for item in spec:
        parts = str(item).split()
        if not 1 <= len(parts) <= 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
            raise ContractError(f"{ds.name}: cassandraClustering entry {item!r} is not 'column [asc|desc]'")
        out.append((parts[0], parts[1].upper() if len(parts) == 2 else "ASC"))
    return tuple(out)


def cql_path(registry: Registry) -> str:
    """Where the generated CQL lives: one script per keyspace."""
    return f"contracts/generated/cassandra/{registry.keyspace}.cql"


def cassandra_table(ds: Dataset, keyspace: str | None = None) -> CassandraTable:
    """The serving table of a topic contract with ``cassandraPartitionKey``; errors name the contract."""
    partition = ds.custom_property("cassandraPartitionKey")
    if not isinstance(partition, list) or not partition:
        raise ContractError(f"{ds.name}: cassandraPartitionKey must be a non-empty list of columns")
    clustering = _clustering(ds.custom_property("cassandraClustering", []), ds)
    columns: list[CqlColumn] = []
    day = ds.custom_property("cassandraDayColumn")
    if day is not None:
        if not isinstance(day, dict) or not day.get("name") or not day.get("of"):
            raise ContractError(f"{ds.name}: cassandraDayColumn must be {{name: COLUMN, of: TIMESTAMP_FIELD}}")
        source = ds.column(day["of"]) if day["of"] in ds.column_names else None
        if source is None or cql_type(source) != "timestamp":
            raise ContractError(f"{ds.name}: cassandraDayColumn.of {day['of']!r} is not a timestamp field")
        columns.append(CqlColumn(day["name"], "date", source.name))
    columns += [CqlColumn(c.name, cql_type(c)) for c in ds.columns]
    columns.append(CqlColumn(UPDATED_COLUMN, "timestamp"))
    known = {c.name for c in columns}
    key = [*partition, *(c for c, _ in clustering)]
    for name in key:
        if name not in known or name == UPDATED_COLUMN:
            raise ContractError(f"{ds.name}: Cassandra key column {name!r} is not a field of the contract")
        if name in ds.column_names and not ds.column(name).required:
            raise ContractError(f"{ds.name}: Cassandra key column {name!r} must be a required field")
    if len(set(key)) != len(key):
        raise ContractError(f"{ds.name}: a column appears twice in the Cassandra primary key {key}")
    missing = [k for k in ds.primary_key if k not in key]
    if missing:
        raise ContractError(f"{ds.name}: the contract's key {ds.primary_key} must be in the Cassandra primary key "
                            f"(missing {missing}), or an upsert would merge distinct records")
    options = ds.custom_property("cassandraTableOptions", {}) or {}
    if not isinstance(options, dict):
        raise ContractError(f"{ds.name}: cassandraTableOptions must be a mapping")
    keyspace = keyspace or ds.custom_property("cassandraKeyspace")
    if not keyspace:
        raise ContractError(f"{ds.name}: a served topic needs a cassandraKeyspace custom property")
    return CassandraTable(keyspace, ds.physical_name, ds.physical_name, tuple(columns), tuple(partition), clustering,
                          tuple(sorted(options.items())), ds.description)


def serving_tables(registry: Registry, keyspace: str | None = None) -> list[CassandraTable]:
    """Every topic contract with a Cassandra layout, by name (in ``keyspace`` instead of the contracts' one)."""
    return [cassandra_table(ds, keyspace) for ds in sorted(registry.topics(), key=lambda d: d.name)
            if ds.custom_property("cassandraPartitionKey") is not None]


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(str(k))}: {_literal(v)}" for k, v in value.items()) + "}"
    return "'" + str(value).replace("'", "''") + "'"


# The local node's replication; a deployment's comes from its settings (local_dc, replication_factor).
LOCAL_REPLICATION = {LOCAL_DC: 1}


def keyspace_cql(keyspace: str, replication: Mapping[str, int] = LOCAL_REPLICATION) -> str:
    return f"CREATE KEYSPACE IF NOT EXISTS {keyspace}\n    WITH replication = {replication_cql(replication)};\n"


def table_cql(table: CassandraTable) -> str:
    lines = [f"    {c.name} {c.type}" for c in table.columns]
    partition = ", ".join(table.partition_key)
    rest = "".join(f", {c}" for c, _ in table.clustering)
    lines.append(f"    PRIMARY KEY (({partition}){rest})")
    withs = []
    if table.clustering:
        withs.append("CLUSTERING ORDER BY (" + ", ".join(f"{c} {o}" for c, o in table.clustering) + ")")
    withs += [f"{k} = {_literal(v)}" for k, v in table.options]
    if table.comment:
        withs.append(f"comment = {_literal(table.comment)}")
    ddl = f"CREATE TABLE IF NOT EXISTS {table.qualified_name} (\n" + ",\n".join(lines) + "\n)"
    if withs:
        ddl += " WITH " + "\n    AND ".join(withs)
    return f"-- from topic {table.topic}\n{ddl};\n"


def render_cassandra(registry: Registry, keyspace: str | None = None,
                     replication: Mapping[str, int] = LOCAL_REPLICATION) -> str:
    """The keyspace and every serving table, as one CQL script (the contracts' keyspace unless one is given; the
    local node's replication unless one is given: the generated file shows that one, the sink applies the
    deployment's)."""
    keyspace = keyspace or registry.keyspace
    return HEADER + "\n" + keyspace_cql(keyspace, replication) + "".join(
        "\n" + table_cql(t) for t in serving_tables(registry, keyspace))
