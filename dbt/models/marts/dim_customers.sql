with

customers as (
    select * from {{ ref('stg_olist__customers') }}
),

orders as (
    select * from {{ ref('stg_olist__orders') }}
),

places as (
    select * from {{ ref('int_geolocation__zip_centroids') }}
),

customer_orders as (
    select
        customers.*,
        orders.order_purchase_timestamp
    from customers
    left join orders on customers.customer_id = orders.customer_id
),

latest_record as (
    -- a person (customer_unique_id) has one customer record per order: the latest order's address wins
    select *
    from customer_orders
    qualify row_number() over (
        partition by customer_unique_id order by order_purchase_timestamp desc nulls last, customer_id
    ) = 1
),

order_stats as (
    select
        customer_unique_id,
        count(order_purchase_timestamp) as orders_count,
        min(order_purchase_timestamp) as first_purchase_at,
        max(order_purchase_timestamp) as last_purchase_at
    from customer_orders
    group by 1
),

final as (
    select
        latest_record.customer_unique_id,
        latest_record.customer_zip_code_prefix,
        latest_record.customer_city,
        latest_record.customer_state,
        places.latitude,
        places.longitude,
        order_stats.orders_count,
        order_stats.first_purchase_at,
        order_stats.last_purchase_at
    from latest_record
    inner join order_stats on latest_record.customer_unique_id = order_stats.customer_unique_id
    left join places on latest_record.customer_zip_code_prefix = places.zip_code_prefix
)

select * from final
