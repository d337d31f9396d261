with

products as (
    select * from {{ ref('stg_olist__products') }}
),

translations as (
    select * from {{ ref('stg_olist__product_category_name_translation') }}
),

final as (
    select
        products.product_id,
        coalesce(products.product_category_name, 'uncategorized') as product_category_name,
        -- two categories have no English name in the source: they keep the Portuguese one
        coalesce(translations.product_category_name_english, products.product_category_name, 'uncategorized')
            as product_category,
        translations.product_category_name_english is null
            and products.product_category_name is not null as is_category_untranslated,
        products.product_photos_qty,
        products.product_weight_g,
        products.product_length_cm,
        products.product_height_cm,
        products.product_width_cm,
        products.product_length_cm * products.product_height_cm * products.product_width_cm as product_volume_cm3
    from products
    left join translations on products.product_category_name = translations.product_category_name
)

select * from final
