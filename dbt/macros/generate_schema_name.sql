{# Layers are schemas of their own (silver, gold), not suffixes of the target schema. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
  {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
