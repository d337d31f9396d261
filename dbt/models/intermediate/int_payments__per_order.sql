with

payments as (
    select * from {{ ref('stg_olist__order_payments') }}
),

largest_payment as (
    select order_id, payment_type as main_payment_type
    from payments
    qualify row_number() over (partition by order_id order by payment_value desc, payment_sequential) = 1
),

per_order as (
    select
        order_id,
        count(*) as payments_count,
        sum(payment_value) as payment_value,
        max(payment_installments) as max_installments,
        sum(case when payment_type = 'voucher' then payment_value else 0 end) as voucher_value
    from payments
    group by 1
),

joined as (
    select
        per_order.*,
        largest_payment.main_payment_type
    from per_order
    inner join largest_payment on per_order.order_id = largest_payment.order_id
)

select * from joined
