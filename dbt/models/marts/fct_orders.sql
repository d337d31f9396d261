with

orders as (
    select * from {{ ref('stg_olist__orders') }}
),

customers as (
    select * from {{ ref('stg_olist__customers') }}
),

items as (
    select * from {{ ref('int_order_items__per_order') }}
),

payments as (
    select * from {{ ref('int_payments__per_order') }}
),

reviews as (
    select * from {{ ref('stg_olist__order_reviews') }}
),

joined as (
    select
        -- ids
        orders.order_id,
        orders.customer_id,
        customers.customer_unique_id,
        -- status and place (the customer's own state: never blank, unlike a geolocation lookup)
        orders.order_status,
        customers.customer_zip_code_prefix,
        customers.customer_city,
        customers.customer_state,
        -- timestamps
        orders.order_purchase_timestamp as purchased_at,
        cast(orders.order_purchase_timestamp as date) as purchase_date,
        extract(hour from orders.order_purchase_timestamp) * 60
            + extract(minute from orders.order_purchase_timestamp) as purchase_minute_of_day,
        orders.order_approved_at as approved_at,
        orders.order_delivered_carrier_date as delivered_to_carrier_at,
        orders.order_delivered_customer_date as delivered_at,
        orders.order_estimated_delivery_date as estimated_delivery_at,
        -- numerics
        coalesce(items.items_count, 0) as items_count,
        coalesce(items.items_value, 0) as items_value,
        coalesce(items.freight_value, 0) as freight_value,
        coalesce(items.items_value, 0) + coalesce(items.freight_value, 0) as order_value,
        coalesce(payments.payments_count, 0) as payments_count,
        coalesce(payments.payment_value, 0) as payment_value,
        payments.main_payment_type,
        payments.max_installments,
        reviews.review_score
    from orders
    left join customers on orders.customer_id = customers.customer_id
    left join items on orders.order_id = items.order_id
    left join payments on orders.order_id = payments.order_id
    left join reviews on orders.order_id = reviews.order_id
),

delivery as (
    select
        *,
        {{ days_between('purchased_at', 'delivered_at') }} as days_to_deliver,
        -- the promised day is the deadline: delivered during it (at any hour) is on time
        case when delivered_at is not null then cast(delivered_at as date) > cast(estimated_delivery_at as date) end
            as is_late,
        order_status = 'delivered' and delivered_at is null as is_delivered_without_date
    from joined
)

select * from delivery
