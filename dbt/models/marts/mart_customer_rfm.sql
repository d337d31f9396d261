-- Recency, frequency and monetary value per person, scored 1..5 against the data set's last purchase.
with

orders as (
    select * from {{ ref('fct_orders') }}
    where order_status not in ('canceled', 'unavailable')
),

as_of as (
    select max(purchased_at) as as_of_at from orders
),

per_customer as (
    select
        customer_unique_id,
        max(purchased_at) as last_purchase_at,
        count(*) as frequency,
        sum(payment_value) as monetary
    from orders
    group by 1
),

scored as (
    select
        per_customer.*,
        {{ days_between('per_customer.last_purchase_at', 'as_of.as_of_at') }} as recency_days,
        ntile(5) over (order by per_customer.last_purchase_at, per_customer.customer_unique_id) as r_score,
        ntile(5) over (order by per_customer.frequency, per_customer.monetary, per_customer.customer_unique_id)
            as f_score,
        ntile(5) over (order by per_customer.monetary, per_customer.customer_unique_id) as m_score
    from per_customer
    cross join as_of
)

select
    *,
    case
        when r_score >= 4 and f_score >= 4 then 'champions'
        when r_score >= 4 then 'recent'
        when r_score <= 2 and m_score >= 4 then 'big spenders at risk'
        when r_score <= 2 then 'hibernating'
        else 'needs attention'
    end as segment
from scored
