with

payments as (
    select * from {{ ref('stg_olist__order_payments') }}
),

orders as (
    select * from {{ ref('stg_olist__orders') }}
)

select
    payments.order_id,
    payments.payment_sequential,
    payments.payment_type,
    payments.payment_installments,
    payments.payment_value,
    cast(orders.order_purchase_timestamp as date) as purchase_date
from payments
inner join orders on payments.order_id = orders.order_id
