-- Each payment's current version as the speed layer sees it: its last streamed change in topic order. Snapshot
-- reads are history, not live payments (left out, as the Flink job leaves them out); a delete as the last change
-- removes the payment.
with

events as (
    select * from {{ ref('stg_cdc__order_payments') }}
),

streamed as (
    select * from events
    where op <> 'r'
),

ranked as (
    select
        *,
        row_number() over (
            partition by order_id, payment_sequential
            order by kafka_partition desc, kafka_offset desc
        ) as change_rank
    from streamed
),

current_versions as (
    select
        order_id,
        payment_sequential,
        payment_type,
        payment_installments,
        payment_value,
        commit_ms,
        commit_ms - mod(commit_ms, {{ var('window_ms') }}) as window_start_ms
    from ranked
    where change_rank = 1 and op <> 'd'
)

select * from current_versions
