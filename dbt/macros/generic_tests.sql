{# Generic tests the project needs without packages (dbt deps cannot reach the hub offline). #}

{% test olist_accepted_range(model, column_name, min_value=none, max_value=none) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
  and (
    {% if min_value is not none %}{{ column_name }} < {{ olist_literal(min_value) }}{% else %}false{% endif %}
    or {% if max_value is not none %}{{ column_name }} > {{ olist_literal(max_value) }}{% else %}false{% endif %}
  )
{% endtest %}

{% test olist_unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}

{% test olist_expression_is_true(model, expression) %}
select *
from {{ model }}
where not ({{ expression }})
{% endtest %}

{% macro olist_literal(value) -%}
  {%- if value is string and not value.isdigit() -%}cast('{{ value }}' as timestamp){%- else -%}{{ value }}{%- endif -%}
{%- endmacro %}
