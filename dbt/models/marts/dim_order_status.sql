{%- set statuses = contract_enum('orders', 'order_status') -%}
{%- set final_statuses = ['delivered', 'canceled', 'unavailable'] -%}

with

statuses as (
    {% for status in statuses -%}
    select
        '{{ status }}' as order_status,
        {{ loop.index }} as lifecycle_position,
        {{ 'true' if status in final_statuses else 'false' }} as is_final
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select * from statuses
