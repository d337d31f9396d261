"""The batch lane: the Olist CSV files generated (``generator``), loaded into PostgreSQL (``load``), ingested to
S3 bronze Parquet (``ingest``), modelled by dbt bronze -> silver -> gold (``transform``) and promoted to
Snowflake by a profile switch (``promote``)."""
