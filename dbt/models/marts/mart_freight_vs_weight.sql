-- Freight against product weight, in 500 g bands (the seed's scatter, without a million points).
with

items as (
    select * from {{ ref('fct_order_items') }}
    where product_weight_g is not null
)

select
    floor(product_weight_g / 500) * 500 as weight_band_g,
    count(*) as items,
    avg(product_weight_g) as avg_weight_g,
    avg(freight_value) as avg_freight,
    avg(price) as avg_price,
    sum(freight_value) / nullif(sum(price), 0) as freight_to_price
from items
group by 1
