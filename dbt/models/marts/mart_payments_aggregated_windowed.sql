-- The batch layer's recompute of the speed layer's olist_payments_aggregated_windowed, from the raw archive:
-- payments per tumbling window of commit time and payment type, with the Flink job's semantics.
with

current_payments as (
    select * from {{ ref('int_payments__current_streamed') }}
),

windows as (
    select
        window_start_ms,
        payment_type,
        count(*) as payment_count,
        cast(sum(payment_value) as decimal(14, 2)) as payment_sum,
        cast(sum(payment_value) as double) / count(*) as payment_avg,
        min(payment_value) as payment_min,
        max(payment_value) as payment_max
    from current_payments
    group by window_start_ms, payment_type
)

select
    {{ timestamp_from_epoch_ms('window_start_ms') }} as window_start,
    {{ timestamp_from_epoch_ms('window_start_ms + ' ~ var('window_ms')) }} as window_end,
    payment_type,
    payment_count,
    payment_sum,
    payment_avg,
    payment_min,
    payment_max
from windows
