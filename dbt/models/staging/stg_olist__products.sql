with

source as (
    {{ latest_version(source('bronze', 'products'), ['product_id']) }}
),

renamed as (
    select
        -- ids
        product_id,
        -- category (Portuguese; translated in dim_products)
        product_category_name,
        -- catalogue numerics (the source's "lenght" spelling is kept)
        product_name_lenght,
        product_description_lenght,
        product_photos_qty,
        product_weight_g,
        product_length_cm,
        product_height_cm,
        product_width_cm
    from source
)

select * from renamed
