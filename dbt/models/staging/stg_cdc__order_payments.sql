-- The raw archive's change events of order_payments, parsed from the Debezium envelope (JSON text) as the topic's
-- contract describes it. Tombstones (no value) are left out, and so is every event that breaks the contract, by
-- the rules the Flink job applies (generated from the same contract: macro row_rules_hold): text that is not
-- JSON, an unknown op, no commit time, a key or an after image outside its column's rules. Nothing here raises
-- on a bad event; the raw archive dead-letters each one with its reason.
with

archived as (
    select * from {{ source('bronze', 'raw_order_payments') }}
    where record_value is not null
),

envelopes as (
    select
        -- where in the topic
        kafka_partition,
        kafka_offset,
        -- the change
        {{ json_text('record_value', 'op') }} as op,
        -- the row the event names: after, or before when there is no after (a delete)
        case when {{ json_present('record_value', 'after') }} then 'after' else 'before' end as named,
        {{ json_text('record_value', 'after.order_id') }} as after_order_id,
        {{ json_text('record_value', 'before.order_id') }} as before_order_id,
        {{ json_number('record_value', 'after.payment_sequential') }} as after_payment_sequential,
        {{ json_number('record_value', 'before.payment_sequential') }} as before_payment_sequential,
        -- the row after it (null for a delete)
        {{ json_text('record_value', 'after.payment_type') }} as payment_type,
        {{ json_number('record_value', 'after.payment_installments') }} as payment_installments,
        {{ json_number('record_value', 'after.payment_value', 'decimal(12, 2)') }} as payment_value,
        -- commit time in PostgreSQL: the event time
        {{ json_number('record_value', 'source.ts_ms', 'bigint') }} as commit_ms
    from archived
),

named_keys as (
    select
        *,
        case when named = 'after' then after_order_id else before_order_id end as order_id,
        case when named = 'after' then after_payment_sequential else before_payment_sequential end
            as payment_sequential
    from envelopes
),

valid as (
    select *
    from named_keys
    where op in {{ contract_ops('order_payments') }}
      and commit_ms is not null
      and {{ row_rules_hold('order_payments', keys_only=true) }}
      and (op = 'd' or (named = 'after' and {{ row_rules_hold('order_payments') }}))
),

parsed as (
    select
        kafka_partition,
        kafka_offset,
        op,
        order_id,
        cast(payment_sequential as integer) as payment_sequential,
        payment_type,
        cast(payment_installments as integer) as payment_installments,
        payment_value,
        commit_ms
    from valid
)

select * from parsed
