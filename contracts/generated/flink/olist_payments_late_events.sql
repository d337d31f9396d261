-- Generated from contracts/ by `olist contracts generate`. Do not edit by hand.
-- olist_payments_late_events: contract olist.topic.payments_late_events 1.1.0

-- olist_payments_late_events: append-only, keyed by (order_id, payment_sequential).
CREATE TABLE `olist_payments_late_events` (
    `order_id` STRING NOT NULL,
    `payment_sequential` INT NOT NULL,
    `op` STRING NOT NULL,
    `payment_type` STRING NOT NULL,
    `commit_time` TIMESTAMP(3) NOT NULL,
    `window_start` TIMESTAMP(3) NOT NULL,
    `watermark_time` TIMESTAMP(3) NOT NULL
) WITH (
    'connector' = 'kafka',
    'topic' = 'olist_payments_late_events',
    'properties.bootstrap.servers' = '${bootstrap_servers}',
    'properties.transaction.timeout.ms' = '${transaction_timeout_ms}',
    'sink.delivery-guarantee' = 'exactly-once',
    'sink.transactional-id-prefix' = '${transactional_id_prefix}-olist_payments_late_events',
    'key.format' = 'json',
    'key.json.encode.decimal-as-plain-number' = 'true',
    'key.fields' = 'order_id;payment_sequential',
    'value.format' = 'json',
    'value.json.encode.decimal-as-plain-number' = 'true',
    'value.fields-include' = 'ALL'
);
