with

payments as (
    select * from {{ ref('fct_payments') }}
)

select
    payment_type,
    payment_installments,
    count(*) as payments,
    count(distinct order_id) as orders,
    sum(payment_value) as payment_value,
    avg(payment_value) as avg_payment_value
from payments
group by 1, 2
