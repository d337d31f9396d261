with

minutes as (
    {{ integer_range(1440) }}
)

select
    i as minute_of_day,
    floor(i / 60) as hour,
    mod(i, 60) as minute,
    case
        when i < 6 * 60 then 'dawn'
        when i < 12 * 60 then 'morning'
        when i < 18 * 60 then 'afternoon'
        else 'night'
    end as period_of_day
from minutes
