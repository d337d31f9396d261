-- The batch layer's recompute of the speed layer's olist_payments_installments_windowed, from the raw archive:
-- payments per tumbling window of commit time, payment type and number of installments.
with

current_payments as (
    select * from {{ ref('int_payments__current_streamed') }}
),

windows as (
    select
        window_start_ms,
        payment_type,
        payment_installments,
        count(*) as installment_count
    from current_payments
    group by window_start_ms, payment_type, payment_installments
)

select
    {{ timestamp_from_epoch_ms('window_start_ms') }} as window_start,
    {{ timestamp_from_epoch_ms('window_start_ms + ' ~ var('window_ms')) }} as window_end,
    payment_type,
    payment_installments,
    installment_count
from windows
