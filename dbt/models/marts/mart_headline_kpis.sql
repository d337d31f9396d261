-- The dashboard's KPI cards, one row.
with

orders as (
    select * from {{ ref('fct_orders') }}
),

items as (
    select * from {{ ref('fct_order_items') }}
),

order_kpis as (
    select
        count(*) as orders,
        count(distinct customer_unique_id) as customers,
        sum(payment_value) as total_payments,
        avg(case when is_late is not null then case when is_late then 0.0 else 1.0 end end) as on_time_rate
    from orders
),

item_kpis as (
    select
        count(*) as order_items,
        count(distinct product_id) as products,
        count(distinct seller_id) as sellers,
        sum(price) as total_sales,
        sum(freight_value) as total_freight
    from items
)

select * from order_kpis cross join item_kpis
