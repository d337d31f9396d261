-- Generated from contracts/ by `olist contracts generate`. Do not edit by hand.
-- olist.order_payments: contract olist.topic.order_payments 1.0.0

-- olist.order_payments as the Debezium changelog of order_payments: inserts, updates and deletes of its
-- rows (tombstones are skipped); event_time is the commit time (source.ts_ms).
CREATE TABLE `order_payments_changelog` (
    `order_id` STRING NOT NULL,
    `payment_sequential` SMALLINT NOT NULL,
    `payment_type` STRING NOT NULL,
    `payment_installments` SMALLINT NOT NULL,
    `payment_value` DECIMAL(12, 2) NOT NULL,
    `event_time` TIMESTAMP_LTZ(3) METADATA FROM 'value.source.timestamp' VIRTUAL,
    PRIMARY KEY (`order_id`, `payment_sequential`) NOT ENFORCED
) WITH (
    'connector' = 'kafka',
    'topic' = 'olist.order_payments',
    'properties.bootstrap.servers' = '${bootstrap_servers}',
    'properties.group.id' = '${group_id}-changelog',
    'properties.isolation.level' = 'read_committed',
    'scan.startup.mode' = '${startup_mode}',
    'format' = 'debezium-json',
    'debezium-json.schema-include' = 'false',
    'debezium-json.ignore-parse-errors' = 'false'
);

-- olist.order_payments as raw envelopes (append-only); the watermark advances after every event.
CREATE TABLE `order_payments_events` (
    `before` ROW<`order_id` STRING, `payment_sequential` SMALLINT, `payment_type` STRING, `payment_installments` SMALLINT, `payment_value` DECIMAL(12, 2)>,
    `after` ROW<`order_id` STRING, `payment_sequential` SMALLINT, `payment_type` STRING, `payment_installments` SMALLINT, `payment_value` DECIMAL(12, 2)>,
    `op` STRING NOT NULL,
    `ts_ms` BIGINT NOT NULL,
    `source` ROW<`connector` STRING, `db` STRING, `schema` STRING, `table` STRING, `ts_ms` BIGINT, `lsn` BIGINT, `txId` BIGINT, `snapshot` STRING> NOT NULL,
    `event_time` AS TO_TIMESTAMP_LTZ(`source`.`ts_ms`, 3),
    WATERMARK FOR `event_time` AS `event_time` - INTERVAL '${watermark_delay}' SECOND
) WITH (
    'connector' = 'kafka',
    'topic' = 'olist.order_payments',
    'properties.bootstrap.servers' = '${bootstrap_servers}',
    'properties.group.id' = '${group_id}-events',
    'properties.isolation.level' = 'read_committed',
    'scan.startup.mode' = '${startup_mode}',
    'format' = 'json',
    'json.fail-on-missing-field' = 'false',
    'json.ignore-parse-errors' = 'false',
    'scan.watermark.emit.strategy' = 'on-event'
);
