{# Bronze keeps every ingested version of a row; silver keeps the newest per key. #}
{% macro latest_version(relation, key_columns) -%}
  select *
  from {{ relation }}
  qualify row_number() over (partition by {{ key_columns | join(', ') }} order by _changed_at desc) = 1
{%- endmacro %}
