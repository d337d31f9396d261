"""The speed lane: live trading mimicked in PostgreSQL (``simulate``), captured by Debezium (``cdc``) onto the raw
topic, archived to S3 as the master dataset (``archive``), windowed by the Flink job (``flink/``) and sunk into
Cassandra (``sink``)."""
