with

source as (
    select * from {{ source('bronze', 'geolocation') }}
),

inside_brazil as (
    -- points outside Brazil's bounding box are typing errors in the source
    select *
    from source
    where geolocation_lat between {{ var('brazil_lat')[0] }} and {{ var('brazil_lat')[1] }}
      and geolocation_lng between {{ var('brazil_lng')[0] }} and {{ var('brazil_lng')[1] }}
),

renamed as (
    select
        geolocation_zip_code_prefix,
        geolocation_lat,
        geolocation_lng,
        {{ normalize_text('geolocation_city') }} as geolocation_city,
        upper(geolocation_state) as geolocation_state
    from inside_brazil
)

select * from renamed
