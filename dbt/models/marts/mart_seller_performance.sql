with

items as (
    select * from {{ ref('fct_order_items') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

sellers as (
    select * from {{ ref('dim_sellers') }}
),

seller_orders as (
    select distinct items.seller_id, orders.order_id, orders.is_late, orders.review_score
    from items
    inner join orders on items.order_id = orders.order_id
),

per_seller as (
    select
        seller_id,
        count(*) as orders,
        avg(review_score) as avg_review_score,
        avg(case when is_late then 1.0 when is_late is not null then 0.0 end) as late_rate
    from seller_orders
    group by 1
),

sales as (
    select
        seller_id,
        count(*) as items,
        sum(price) as sales,
        sum(freight_value) as freight,
        min(purchase_date) as first_sale_date,
        max(purchase_date) as last_sale_date
    from items
    group by 1
)

select
    sellers.seller_id,
    sellers.seller_city,
    sellers.seller_state,
    per_seller.orders,
    sales.items,
    sales.sales,
    sales.freight,
    per_seller.avg_review_score,
    per_seller.late_rate,
    sales.first_sale_date,
    sales.last_sale_date
from sellers
inner join sales on sellers.seller_id = sales.seller_id
inner join per_seller on sellers.seller_id = per_seller.seller_id
