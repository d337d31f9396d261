-- Generated from contracts/ by `olist contracts generate`. Do not edit by hand.
-- olist_payments_aggregated_windowed: contract olist.topic.payments_aggregated_windowed 2.1.0

-- olist_payments_aggregated_windowed: upsert-kafka keyed by (window_start, window_end, payment_type); a deleted key is written as a tombstone.
CREATE TABLE `olist_payments_aggregated_windowed` (
    `window_start` TIMESTAMP(3) NOT NULL,
    `window_end` TIMESTAMP(3) NOT NULL,
    `payment_type` STRING NOT NULL,
    `payment_count` BIGINT NOT NULL,
    `payment_sum` DECIMAL(14, 2) NOT NULL,
    `payment_avg` DOUBLE NOT NULL,
    `payment_min` DECIMAL(12, 2) NOT NULL,
    `payment_max` DECIMAL(12, 2) NOT NULL,
    PRIMARY KEY (`window_start`, `window_end`, `payment_type`) NOT ENFORCED
) WITH (
    'connector' = 'upsert-kafka',
    'topic' = 'olist_payments_aggregated_windowed',
    'properties.bootstrap.servers' = '${bootstrap_servers}',
    'properties.transaction.timeout.ms' = '${transaction_timeout_ms}',
    'sink.delivery-guarantee' = 'exactly-once',
    'sink.transactional-id-prefix' = '${transactional_id_prefix}-olist_payments_aggregated_windowed',
    'key.format' = 'json',
    'key.json.encode.decimal-as-plain-number' = 'true',
    'value.format' = 'json',
    'value.json.encode.decimal-as-plain-number' = 'true',
    'value.fields-include' = 'ALL',
    'sink.buffer-flush.max-rows' = '10000',
    'sink.buffer-flush.interval' = '1 s'
);
