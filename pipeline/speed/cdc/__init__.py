"""Change data capture: PostgreSQL -> Debezium (Kafka Connect) -> ``olist.order_payments``, wired from the
contracts and the connector config beside this file."""

from pipeline.speed.cdc.connector import (
    CDC_USER,
    CONNECTOR,
    CONNECTOR_CONFIG,
    captured_tables,
    connector_config,
    prepare_postgres,
    start,
    status,
    stop,
    topic_specs,
)

__all__ = ["CDC_USER", "CONNECTOR", "CONNECTOR_CONFIG", "captured_tables", "connector_config", "prepare_postgres",
           "start", "status", "stop", "topic_specs"]
