-- Monthly acquisition cohorts: how many of a month's new customers buy again N months later.
with

orders as (
    select customer_unique_id, purchase_date, payment_value
    from {{ ref('fct_orders') }}
    where order_status not in ('canceled', 'unavailable')
),

firsts as (
    select customer_unique_id, min(purchase_date) as first_purchase_date
    from orders
    group by 1
),

activity as (
    select
        extract(year from firsts.first_purchase_date) * 100
            + extract(month from firsts.first_purchase_date) as cohort_month,
        {{ months_between_dates('firsts.first_purchase_date', 'orders.purchase_date') }} as months_since_first,
        orders.customer_unique_id,
        orders.payment_value
    from orders
    inner join firsts on orders.customer_unique_id = firsts.customer_unique_id
)

select
    cohort_month,
    months_since_first,
    count(distinct customer_unique_id) as customers,
    count(*) as orders,
    sum(payment_value) as revenue
from activity
group by 1, 2
