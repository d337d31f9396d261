with

source as (
    {{ latest_version(source('bronze', 'order_payments'), ['order_id', 'payment_sequential']) }}
),

renamed as (
    select
        -- ids
        order_id,
        payment_sequential,
        -- payment
        payment_type,
        payment_installments,
        cast(payment_value as decimal(12, 2)) as payment_value
    from source
)

select * from renamed
