with

items as (
    select * from {{ ref('stg_olist__order_items') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

products as (
    select * from {{ ref('dim_products') }}
)

select
    -- ids
    items.order_id,
    items.order_item_id,
    items.product_id,
    items.seller_id,
    orders.customer_unique_id,
    -- order context (years come from the purchase date, never from shipping_limit_date)
    orders.order_status,
    orders.purchase_date,
    orders.purchase_minute_of_day,
    orders.customer_state,
    orders.customer_city,
    products.product_category,
    products.product_weight_g,
    -- timestamps
    items.shipping_limit_date as shipping_limit_at,
    -- money
    items.price,
    items.freight_value
from items
inner join orders on items.order_id = orders.order_id
left join products on items.product_id = products.product_id
