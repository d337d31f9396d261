with

orders as (
    select * from {{ ref('fct_orders') }}
    where order_status = 'delivered'
)

select
    extract(year from purchase_date) as purchase_year,
    extract(month from purchase_date) as purchase_month,
    customer_state,
    count(*) as delivered_orders,
    count(delivered_at) as orders_with_delivery_date,
    sum(case when is_delivered_without_date then 1 else 0 end) as orders_without_delivery_date,
    sum(case when is_late then 1 else 0 end) as late_orders,
    avg(days_to_deliver) as avg_days_to_deliver,
    avg(case when is_late then review_score end) as avg_review_score_late,
    avg(case when not is_late then review_score end) as avg_review_score_on_time
from orders
group by 1, 2, 3
