with

sellers as (
    select * from {{ ref('stg_olist__sellers') }}
),

places as (
    select * from {{ ref('int_geolocation__zip_centroids') }}
)

select
    sellers.seller_id,
    sellers.seller_zip_code_prefix,
    sellers.seller_city,
    sellers.seller_state,
    places.latitude,
    places.longitude
from sellers
left join places on sellers.seller_zip_code_prefix = places.zip_code_prefix
