{%- set payment_types = contract_enum('order_payments', 'payment_type') -%}

with

payment_types as (
    {% for payment_type in payment_types -%}
    select
        '{{ payment_type }}' as payment_type,
        '{{ payment_type | replace("_", " ") }}' as payment_type_label,
        {{ 'true' if payment_type == 'credit_card' else 'false' }} as allows_installments
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select * from payment_types
