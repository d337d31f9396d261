with

days as (
    {{ day_spine("'" ~ var('date_spine_start') ~ "'", "'" ~ var('date_spine_end') ~ "'") }}
)

select
    date_day,
    extract(year from date_day) as year,
    extract(quarter from date_day) as quarter,
    extract(month from date_day) as month,
    extract(day from date_day) as day_of_month,
    extract(dayofweek from date_day) as day_of_week,
    extract(year from date_day) * 100 + extract(month from date_day) as year_month
from days
