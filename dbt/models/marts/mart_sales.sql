-- Sales and freight by purchase year and month, customer state and city, category and period of day:
-- the grain the BI dashboard slices.
with

items as (
    select * from {{ ref('fct_order_items') }}
),

times as (
    select * from {{ ref('dim_time_of_day') }}
),

sales as (
    select
        extract(year from items.purchase_date) as purchase_year,
        extract(month from items.purchase_date) as purchase_month,
        items.customer_state,
        items.customer_city,
        items.product_category,
        times.period_of_day,
        count(distinct items.order_id) as orders,
        count(*) as items,
        sum(items.price) as sales,
        sum(items.freight_value) as freight
    from items
    left join times on items.purchase_minute_of_day = times.minute_of_day
    group by 1, 2, 3, 4, 5, 6
)

select * from sales
