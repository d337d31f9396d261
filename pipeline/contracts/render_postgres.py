"""PostgreSQL DDL generated from the contracts: tables, keys, checks and comments."""

from __future__ import annotations

from pipeline.contracts.registry import Column, Dataset, Registry

HEADER = "-- Generated from contracts/ by `olist contracts generate`. Do not edit by hand.\n"
CHANGE_COLUMN = "_changed_at"
DELETED_COLUMN = "_deleted"  # bronze only: the version of a row that records its delete
DELETIONS_TABLE = "deleted_rows"  # contracts/ops/deleted_rows.odcs.yaml
# Every writer (the loader, the simulator, a person with psql) moves the change timestamp on update, so
# incremental ingestion sees every change.
TOUCH_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {{schema}}.touch_changed_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.{CHANGE_COLUMN} := now();
    RETURN NEW;
END $$;

-- Deletes of keyed source tables are recorded (with the row's last image) for ingestion to carry to bronze.
CREATE OR REPLACE FUNCTION {{schema}}.record_deletion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {{schema}}.{DELETIONS_TABLE} (table_name, row_image, deleted_at)
    VALUES (TG_TABLE_NAME, to_jsonb(OLD), now());
    RETURN OLD;
END $$;
"""


def quote_literal(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def column_checks(col: Column) -> list[str]:
    """CHECK expressions for one column's enum and range."""
    checks = []
    if col.enum:
        checks.append(f"{col.name} IN ({', '.join(quote_literal(v) for v in col.enum)})")
    if col.minimum is not None:
        bound = quote_literal(col.minimum) if col.logical_type in ("timestamp", "date") else col.minimum
        checks.append(f"{col.name} >= {bound}")
    if col.maximum is not None:
        bound = quote_literal(col.maximum) if col.logical_type in ("timestamp", "date") else col.maximum
        checks.append(f"{col.name} <= {bound}")
    # Patterns are enforced at the gates (the loader, JSON Schema, dbt tests), not per row here: three regex
    # CHECKs made COPY of the customers table three times slower.
    return checks


def records_deletes(ds: Dataset) -> bool:
    """Source tables copied incrementally (by key and change time) record their deletes."""
    return bool(ds.source_file and ds.primary_key and ds.change_detection != "full")


def column_definition(col: Column) -> str:
    """One column as CREATE TABLE and ALTER TABLE ... ADD COLUMN write it: type, NOT NULL, its CHECK."""
    line = f"{col.name} {col.physical_type}"
    if col.required:
        line += " NOT NULL"
    if checks := column_checks(col):
        line += " CHECK (" + " AND ".join(checks) + ")"
    return line


def change_tracking(ds: Dataset, schema: str) -> list[str]:
    """The change-time index and the triggers of a source table (idempotent statements)."""
    out = []
    if ds.source_file:
        out.append(f"CREATE INDEX IF NOT EXISTS {ds.physical_name}_{CHANGE_COLUMN}_idx "
                   f"ON {schema}.{ds.physical_name} ({CHANGE_COLUMN});")
        out.append(f"CREATE OR REPLACE TRIGGER {ds.physical_name}_touch BEFORE UPDATE ON {schema}.{ds.physical_name} "
                   f"FOR EACH ROW EXECUTE FUNCTION {schema}.touch_changed_at();")
    if records_deletes(ds):
        out.append(f"CREATE OR REPLACE TRIGGER {ds.physical_name}_deletion AFTER DELETE ON {schema}.{ds.physical_name} "
                   f"FOR EACH ROW EXECUTE FUNCTION {schema}.record_deletion();")
    return out


def column_comment(ds: Dataset, schema: str, col: Column) -> str:
    return f"COMMENT ON COLUMN {schema}.{ds.physical_name}.{col.name} IS {quote_literal(col.description)};"


def table_ddl(ds: Dataset, schema: str) -> str:
    """CREATE TABLE for one dataset, with the loader's change-tracking column."""
    lines = [f"    {column_definition(col)}" for col in ds.columns]
    if ds.source_file:
        lines.append(f"    {CHANGE_COLUMN} timestamptz NOT NULL DEFAULT now()")
    if ds.primary_key:
        lines.append(f"    PRIMARY KEY ({', '.join(ds.primary_key)})")
    out = [f"CREATE TABLE IF NOT EXISTS {schema}.{ds.physical_name} (\n" + ",\n".join(lines) + "\n);"]
    out += change_tracking(ds, schema)
    out.append(f"COMMENT ON TABLE {schema}.{ds.physical_name} IS {quote_literal(ds.description)};")
    out += [column_comment(ds, schema, col) for col in ds.columns if col.description]
    return "\n".join(out) + "\n"


def postgres_tables(registry: Registry) -> list[Dataset]:
    """The datasets that are PostgreSQL tables (sources and operational tables)."""
    return [d for d in registry.datasets if d.custom_property("engine", "postgres") == "postgres"
            and d.physical_type == "table"]


def render_schema(registry: Registry, schema: str = "olist") -> str:
    """The whole DDL script: idempotent, parents before children."""
    parts = [HEADER, f"CREATE SCHEMA IF NOT EXISTS {schema};\n", TOUCH_FUNCTION.format(schema=schema)]
    for ds in registry.load_order(postgres_tables(registry)):
        parts.append("\n" + table_ddl(ds, schema))
    return "".join(parts)
