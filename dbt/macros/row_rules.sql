{# The contract's rules of a CDC row table (generated: contract_row_rules) as one SQL condition over the model's
   columns of the same names, as the Flink job applies them: present when required, in the enum, within the range,
   matching the pattern, integral for an integer column (read as a number). keys_only: the key columns' rules. #}
{% macro row_rules_hold(table, keys_only=false) -%}
  {%- set conditions = [] -%}
  {%- for rule in contract_row_rules(table)['rules'] if rule.key or not keys_only -%}
    {%- set col = rule.column -%}
    {%- if rule.kind == 'required' -%}
      {%- do conditions.append(col ~ ' is not null') -%}
    {%- elif rule.kind == 'enum' -%}
      {%- do conditions.append(col ~ " in ('" ~ rule.value | join("', '") ~ "')") -%}
    {%- elif rule.kind == 'minimum' -%}
      {%- do conditions.append(col ~ ' >= ' ~ rule.value) -%}
    {%- elif rule.kind == 'maximum' -%}
      {%- do conditions.append(col ~ ' <= ' ~ rule.value) -%}
    {%- elif rule.kind == 'pattern' -%}
      {%- do conditions.append(regexp_full_match(col, rule.value)) -%}
    {%- elif rule.kind == 'integer' -%}
      {%- do conditions.append(col ~ ' = floor(' ~ col ~ ')') -%}
    {%- else -%}
      {{ exceptions.raise_compiler_error("row_rules_hold: no SQL for a " ~ rule.kind ~ " rule on " ~ col) }}
    {%- endif -%}
  {%- endfor -%}
  ({{ conditions | join(' and ') }})
{%- endmacro %}

{# The change operations a CDC topic's contract allows, as a quoted SQL list. #}
{% macro contract_ops(table) -%}
  ('{{ contract_row_rules(table)['ops'] | join("', '") }}')
{%- endmacro %}
