with

items as (
    select * from {{ ref('fct_order_items') }}
),

per_category as (
    select
        product_category,
        sum(price) as sales,
        sum(freight_value) as freight,
        count(*) as items,
        count(distinct order_id) as orders
    from items
    group by 1
),

ranked as (
    select
        *,
        rank() over (order by sales desc) as rank_by_sales,
        rank() over (order by freight desc) as rank_by_freight,
        rank() over (order by items desc) as rank_by_items
    from per_category
)

select * from ranked
