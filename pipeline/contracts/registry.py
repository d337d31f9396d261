"""Load ODCS v3 contracts from ``contracts/`` into small typed views the engines use."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from open_data_contract_standard.model import OpenDataContractStandard, SchemaObject, SchemaProperty

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
QUOTE_POLICIES = ("leadingDigit", "always", "minimal", "never")
# What each topic is to the speed lane (its ``streamRole``): the CDC topic, the two windowed views, late events.
STREAM_ROLES = ("raw", "aggregated", "installments", "late")


class ContractError(ValueError):
    """A contract cannot be read or does not hold together."""


@dataclass(frozen=True)
class CsvFormat:
    """How a source file is written: line ends, byte-order mark and quoting."""

    line_terminator: str = "\n"
    byte_order_mark: bool = False
    quote_header: bool = True
    quote: str = "leadingDigit"


@dataclass(frozen=True)
class Column:
    """One property of a contract, flattened for code that generates or checks data."""

    name: str
    logical_type: str
    physical_type: str
    required: bool
    description: str = ""
    primary_key_position: int | None = None
    unique: bool = False
    pattern: str | None = None
    minimum: float | str | None = None
    maximum: float | str | None = None
    timestamp_format: str | None = None
    enum: tuple[Any, ...] | None = None
    value_domain: str | None = None
    csv_quote: str | None = None
    references: tuple[tuple[str, str], ...] = ()
    row_of: str | None = None  # an object holding one row of that dataset (a CDC envelope's before/after)
    children: tuple[Column, ...] = ()  # the properties of an object

    @property
    def is_key(self) -> bool:
        return self.primary_key_position is not None

    @property
    def decimal_digits(self) -> tuple[int, int] | None:
        """(precision, scale) of a numeric(p, s) / decimal(p, s) column, else None."""
        m = re.fullmatch(r"(?:numeric|decimal)\((\d+),\s*(\d+)\)", self.physical_type.lower().strip())
        return (int(m.group(1)), int(m.group(2))) if m else None


@dataclass(frozen=True)
class Dataset:
    """One schema object of a contract: a table or a topic."""

    name: str
    contract_id: str
    version: str
    physical_name: str
    physical_type: str
    description: str
    columns: tuple[Column, ...]
    path: Path
    source_file: str | None = None
    csv_format: CsvFormat | None = None
    change_detection: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def primary_key(self) -> list[str]:
        keyed = [c for c in self.columns if c.is_key]
        return [c.name for c in sorted(keyed, key=lambda c: c.primary_key_position or 0)]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name!r}")

    def custom_property(self, key: str, default: Any = None) -> Any:
        return self.custom.get(key, default)


def _custom(props: list[Any] | None) -> dict[str, Any]:
    return {p.property: p.value for p in props or [] if p.property}


def _column(prop: SchemaProperty) -> Column:
    opts = prop.logicalTypeOptions or {}
    custom = _custom(prop.customProperties)
    refs = []
    for rel in prop.relationships or []:
        targets = rel.to if isinstance(rel.to, list) else [rel.to]
        for target in targets:
            if not target or "." not in target:
                raise ContractError(f"property {prop.name}: relationship target {target!r} is not table.column")
            table, column = target.rsplit(".", 1)
            refs.append((table, column))
    return Column(
        name=prop.name or "",
        logical_type=prop.logicalType or "",
        physical_type=prop.physicalType or "",
        required=bool(prop.required),
        description=prop.description or "",
        primary_key_position=prop.primaryKeyPosition if prop.primaryKey else None,
        unique=bool(prop.unique),
        pattern=opts.get("pattern"),
        minimum=opts.get("minimum"),
        maximum=opts.get("maximum"),
        # a date without a format is ISO (2018-03-20); a timestamp's default is the loader's (ISO, to the second)
        timestamp_format=opts.get("format") or ("yyyy-MM-dd" if prop.logicalType == "date" else None),
        enum=tuple(e.value for e in prop.enum) if prop.enum else None,
        value_domain=custom.get("valueDomain"),
        csv_quote=custom.get("csvQuote"),
        references=tuple(refs),
        row_of=custom.get("rowOf"),
        children=tuple(_column(p) for p in prop.properties or []),
    )


def _dataset(contract: OpenDataContractStandard, obj: SchemaObject, path: Path) -> Dataset:
    custom = _custom(obj.customProperties)
    fmt = custom.get("csvFormat")
    csv_format = None
    if fmt is not None:
        csv_format = CsvFormat(
            line_terminator={"lf": "\n", "crlf": "\r\n"}[fmt.get("lineTerminator", "lf")],
            byte_order_mark=bool(fmt.get("byteOrderMark", False)),
            quote_header=bool(fmt.get("quoteHeader", True)),
            quote=fmt.get("quote", "leadingDigit"),
        )
    return Dataset(
        name=obj.name or "",
        contract_id=contract.id or "",
        version=contract.version or "",
        physical_name=obj.physicalName or obj.name or "",
        physical_type=obj.physicalType or "table",
        description=obj.description or "",
        columns=tuple(_column(p) for p in obj.properties or []),
        path=path,
        source_file=custom.get("sourceFile"),
        csv_format=csv_format,
        change_detection=custom.get("changeDetection"),
        custom=custom,
    )


def parse_contract(path: Path) -> OpenDataContractStandard:
    """Read one ODCS YAML into the standard's pydantic model; errors name the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return OpenDataContractStandard.model_validate(raw)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ContractError(f"{path}: {first}") from exc


def contract_files(root: Path = CONTRACTS_DIR) -> list[Path]:
    return sorted(p for p in root.rglob("*.odcs.yaml") if "generated" not in p.parts)


@dataclass(frozen=True)
class Registry:
    """All datasets described by the contracts under one folder."""

    root: Path
    datasets: tuple[Dataset, ...]

    def dataset(self, name: str) -> Dataset:
        for ds in self.datasets:
            if ds.name == name:
                return ds
        raise KeyError(f"no contract describes {name!r}")

    def topics(self) -> list[Dataset]:
        return [d for d in self.datasets if d.physical_type == "topic"]

    def archive_of(self, topic: str) -> Dataset:
        """The archive (on S3) of ``topic``: the dataset whose ``archiveOf`` names it."""
        found = [d for d in self.datasets if d.custom_property("archiveOf") == topic]
        if len(found) != 1:
            raise ContractError(f"{len(found)} contracts archive {topic!r}; exactly one must")
        return found[0]

    def topic(self, role: str) -> Dataset:
        """The topic playing ``role`` in the speed lane (its ``streamRole``: raw, aggregated, installments, late)."""
        found = [d for d in self.topics() if d.custom_property("streamRole") == role]
        if len(found) != 1:
            raise ContractError(f"{len(found)} topic contracts have streamRole {role!r}; exactly one must")
        return found[0]

    @property
    def keyspace(self) -> str:
        """The Cassandra keyspace of the serving tables (every windowed topic's ``cassandraKeyspace``)."""
        spaces = {d.custom_property("cassandraKeyspace") for d in self.topics()} - {None}
        if len(spaces) != 1:
            raise ContractError(f"the topic contracts name {len(spaces)} Cassandra keyspaces {sorted(spaces)}; "
                                "exactly one must")
        return spaces.pop()

    def source_tables(self) -> list[Dataset]:
        """The Olist CSV-backed tables, parents before children."""
        return self.load_order([d for d in self.datasets if d.source_file])

    def load_order(self, datasets: list[Dataset]) -> list[Dataset]:
        by_name = {d.name: d for d in datasets}
        ordered: list[Dataset] = []
        seen: set[str] = set()

        def visit(ds: Dataset, trail: tuple[str, ...]) -> None:
            if ds.name in seen:
                return
            if ds.name in trail:
                raise ContractError(f"relationship cycle: {' -> '.join((*trail, ds.name))}")
            for col in ds.columns:
                for table, _ in col.references:
                    if table in by_name and table != ds.name:
                        visit(by_name[table], (*trail, ds.name))
            seen.add(ds.name)
            ordered.append(ds)

        for ds in sorted(datasets, key=lambda d: d.name):
            visit(ds, ())
        return ordered


@functools.cache
def load_registry(root: Path = CONTRACTS_DIR) -> Registry:
    """Parse every ``*.odcs.yaml`` below ``root`` (cached per folder)."""
    datasets = []
    for path in contract_files(root):
        contract = parse_contract(path)
        for obj in contract.schema_ or []:
            datasets.append(_dataset(contract, obj, path))
    return Registry(root=root, datasets=tuple(datasets))


@dataclass(frozen=True)
class StreamNames:
    """The speed lane's names, all read from the topic contracts: the CDC topic, the windowed topics, the late
    events, their dead-letter topics and the Cassandra keyspace of their serving tables."""

    raw: str
    archive: str  # the raw topic's archive on S3 (and its bronze table in the warehouse)
    aggregated: str
    installments: str
    late: str
    keyspace: str
    dead_letters: dict[str, str]

    @property
    def windowed(self) -> tuple[str, str]:
        return (self.aggregated, self.installments)

    @property
    def served(self) -> tuple[str, str, str]:
        """The topics the sink writes to Cassandra."""
        return (self.aggregated, self.installments, self.late)

    def dead_letter(self, topic: str) -> str:
        return self.dead_letters[topic]


@functools.cache
def stream_names(root: Path = CONTRACTS_DIR) -> StreamNames:
    registry = load_registry(root)
    topics = {role: registry.topic(role).physical_name for role in STREAM_ROLES}
    dead = {ds.physical_name: ds.custom_property("deadLetterTopic") or f"{ds.physical_name}.dlq"
            for ds in registry.topics()}
    return StreamNames(**topics, archive=registry.archive_of(topics["raw"]).name, keyspace=registry.keyspace,
                       dead_letters=dead)
