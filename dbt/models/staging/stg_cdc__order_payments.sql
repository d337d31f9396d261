-- The raw archive's change events of order_payments, parsed from the Debezium envelope (JSON text) as the topic's
-- contract describes it; tombstones (no value) and events that break the contract are left out, as the speed
-- layer leaves them out.
with

archived as (
    select * from {{ source('bronze', 'raw_order_payments') }}
),

parsed as (
    select
        -- where in the topic
        kafka_partition,
        kafka_offset,
        -- the change
        {{ json_text('record_value', 'op') }} as op,
        coalesce({{ json_text('record_value', 'after.order_id') }}, {{ json_text('record_value', 'before.order_id') }}) as order_id,
        cast(coalesce({{ json_text('record_value', 'after.payment_sequential') }},
                      {{ json_text('record_value', 'before.payment_sequential') }}) as integer) as payment_sequential,
        -- the row after it (null for a delete)
        {{ json_text('record_value', 'after.payment_type') }} as payment_type,
        cast({{ json_text('record_value', 'after.payment_installments') }} as integer) as payment_installments,
        cast({{ json_text('record_value', 'after.payment_value') }} as decimal(12, 2)) as payment_value,
        -- commit time in PostgreSQL: the event time
        cast({{ json_text('record_value', 'source.ts_ms') }} as bigint) as commit_ms
    from archived
    where record_value is not null
),

valid as (
    select *
    from parsed
    where op in ('c', 'u', 'd', 'r')
      and order_id is not null
      and payment_sequential is not null
      and commit_ms is not null
      and (op = 'd' or (payment_type is not null and payment_installments is not null and payment_value is not null))
)

select * from valid
