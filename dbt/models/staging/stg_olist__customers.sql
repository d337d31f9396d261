with

source as (
    {{ latest_version(source('bronze', 'customers'), ['customer_id']) }}
),

renamed as (
    select
        -- ids
        customer_id,
        customer_unique_id,
        -- place (city names lose accents and case: "São Paulo" and "sao paulo" are one city)
        customer_zip_code_prefix,
        {{ normalize_text('customer_city') }} as customer_city,
        upper(customer_state) as customer_state
    from source
)

select * from renamed
