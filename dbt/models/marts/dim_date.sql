with

orders as (
    select * from {{ ref('stg_olist__orders') }}
),

items as (
    select * from {{ ref('stg_olist__order_items') }}
),

order_days as (
    select cast(order_purchase_timestamp as date) as day from orders
    union all
    select cast(order_approved_at as date) from orders
    union all
    select cast(order_delivered_carrier_date as date) from orders
    union all
    select cast(order_delivered_customer_date as date) from orders
    union all
    select cast(order_estimated_delivery_date as date) from orders
    union all
    select cast(shipping_limit_date as date) from items
),

bounds as (
    -- whole calendar years around every day the data holds (simulated trading included)
    select
        {{ first_day_of_year('min(day)') }} as first_day,
        {{ last_day_of_year('max(day)') }} as last_day
    from order_days
),

days as (
    {{ day_spine('bounds') }}
)

select
    date_day,
    extract(year from date_day) as year,
    extract(quarter from date_day) as quarter,
    extract(month from date_day) as month,
    extract(day from date_day) as day_of_month,
    extract(dayofweek from date_day) as day_of_week,
    extract(year from date_day) * 100 + extract(month from date_day) as year_month
from days
