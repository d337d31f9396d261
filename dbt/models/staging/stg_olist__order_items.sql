with

source as (
    {{ latest_version(source('bronze', 'order_items'), ['order_id', 'order_item_id']) }}
),

renamed as (
    select
        -- ids
        order_id,
        order_item_id,
        product_id,
        seller_id,
        -- timestamps
        shipping_limit_date,
        -- money
        cast(price as decimal(12, 2)) as price,
        cast(freight_value as decimal(12, 2)) as freight_value
    from source
)

select * from renamed
