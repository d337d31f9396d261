-- Paid orders whose items exist should be paid price + freight; a small share differs in the source
-- (instalment interest, vouchers), so the rule fails only when more than 10% of them disagree.
with

paid as (
    select *
    from {{ ref('fct_orders') }}
    where items_count > 0 and payments_count > 0
),

mismatch as (
    select
        count(*) as orders,
        sum(case when abs(payment_value - order_value) > 0.01 then 1 else 0 end) as mismatched
    from paid
)

select *
from mismatch
where mismatched > 0.10 * orders
