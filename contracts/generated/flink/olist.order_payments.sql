-- Generated from contracts/ by `olist contracts generate`. Do not edit by hand.
-- olist.order_payments: contract olist.topic.order_payments 1.1.0

-- olist.order_payments as raw envelopes (append-only), with commit time and arrival time.
CREATE TABLE `order_payments_events` (
    `before` ROW<`order_id` STRING, `payment_sequential` DOUBLE, `payment_type` STRING, `payment_installments` DOUBLE, `payment_value` DECIMAL(12, 2)>,
    `after` ROW<`order_id` STRING, `payment_sequential` DOUBLE, `payment_type` STRING, `payment_installments` DOUBLE, `payment_value` DECIMAL(12, 2)>,
    `op` STRING NOT NULL,
    `ts_ms` BIGINT NOT NULL,
    `source` ROW<`connector` STRING, `db` STRING, `schema` STRING, `table` STRING, `ts_ms` BIGINT, `lsn` BIGINT, `txId` BIGINT, `snapshot` STRING> NOT NULL,
    `event_time` AS TO_TIMESTAMP_LTZ(COALESCE(`source`.`ts_ms`, 0), 3),
    `proc_time` AS PROCTIME()
) WITH (
    'connector' = 'kafka',
    'topic' = 'olist.order_payments',
    'properties.bootstrap.servers' = '${bootstrap_servers}',
    'properties.group.id' = '${group_id}-events',
    'properties.isolation.level' = 'read_committed',
    'scan.startup.mode' = '${startup_mode}',
    'format' = 'json',
    'json.fail-on-missing-field' = 'false',
    'json.ignore-parse-errors' = 'true'
);
