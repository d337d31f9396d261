with

source as (
    {{ latest_version(source('bronze', 'sellers'), ['seller_id']) }}
),

renamed as (
    select
        -- ids
        seller_id,
        -- place: a few sellers typed "city, state, country"; keep the city part
        seller_zip_code_prefix,
        {{ normalize_text("split_part(seller_city, ',', 1)") }} as seller_city,
        upper(seller_state) as seller_state
    from source
)

select * from renamed
