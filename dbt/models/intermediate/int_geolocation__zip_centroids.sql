with

points as (
    select * from {{ ref('stg_olist__geolocation') }}
),

city_votes as (
    select
        geolocation_zip_code_prefix,
        geolocation_city,
        geolocation_state,
        count(*) as points
    from points
    group by 1, 2, 3
),

most_common_place as (
    -- a prefix's points disagree on spelling now and then: the most common normalised name wins
    select *
    from city_votes
    qualify row_number() over (
        partition by geolocation_zip_code_prefix order by points desc, geolocation_city, geolocation_state
    ) = 1
),

centroids as (
    select
        geolocation_zip_code_prefix,
        avg(geolocation_lat) as latitude,
        avg(geolocation_lng) as longitude,
        count(*) as points
    from points
    group by 1
),

joined as (
    select
        centroids.geolocation_zip_code_prefix as zip_code_prefix,
        most_common_place.geolocation_city as city,
        most_common_place.geolocation_state as state,
        centroids.latitude,
        centroids.longitude,
        centroids.points
    from centroids
    inner join most_common_place
        on centroids.geolocation_zip_code_prefix = most_common_place.geolocation_zip_code_prefix
)

select * from joined
