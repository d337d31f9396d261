with

source as (
    {{ latest_version(source('bronze', 'orders'), ['order_id']) }}
),

renamed as (
    select
        -- ids
        order_id,
        customer_id,
        -- status
        order_status,
        -- timestamps (local Brazilian time, as recorded)
        order_purchase_timestamp,
        order_approved_at,
        order_delivered_carrier_date,
        order_delivered_customer_date,
        order_estimated_delivery_date
    from source
)

select * from renamed
