with

items as (
    select * from {{ ref('stg_olist__order_items') }}
),

per_order as (
    select
        order_id,
        count(*) as items_count,
        count(distinct product_id) as products_count,
        count(distinct seller_id) as sellers_count,
        sum(price) as items_value,
        sum(freight_value) as freight_value
    from items
    group by 1
)

select * from per_order
