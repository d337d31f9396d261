with

centroids as (
    select * from {{ ref('int_geolocation__zip_centroids') }}
)

select
    zip_code_prefix,
    city,
    state,
    latitude,
    longitude,
    points
from centroids
