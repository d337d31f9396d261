{# Adapter-specific SQL lives only here, dispatched per adapter; models stay identical on every target. #}

{% macro normalize_text(expr) -%}
  {{ return(adapter.dispatch('normalize_text', 'olist')(expr)) }}
{%- endmacro %}

{% macro default__normalize_text(expr) -%}
  trim(lower(translate({{ expr }},
    'áàâãäéèêëíìîïóòôõöúùûüçñÁÀÂÃÄÉÈÊËÍÌÎÏÓÒÔÕÖÚÙÛÜÇÑ',
    'aaaaaeeeeiiiiooooouuuucnaaaaaeeeeiiiiooooouuuucn')))
{%- endmacro %}

{% macro duckdb__normalize_text(expr) -%}
  trim(lower(strip_accents({{ expr }})))
{%- endmacro %}

{# One row per day from bounds.first_day to bounds.last_day (a one-row relation). #}
{% macro day_spine(bounds) -%}
  {{ return(adapter.dispatch('day_spine', 'olist')(bounds)) }}
{%- endmacro %}

{% macro duckdb__day_spine(bounds) -%}
  select cast(unnest(generate_series(first_day, last_day, interval 1 day)) as date) as date_day
  from {{ bounds }}
{%- endmacro %}

{% macro snowflake__day_spine(bounds) -%}
  select date_day
  from (
    select cast(dateadd(day, seq4(), {{ bounds }}.first_day) as date) as date_day, {{ bounds }}.last_day
    from {{ bounds }}, table(generator(rowcount => 40000))
  ) as days
  where date_day <= last_day
{%- endmacro %}

{% macro first_day_of_year(day) -%}
  cast(date_trunc('year', {{ day }}) as date)
{%- endmacro %}

{% macro last_day_of_year(day) -%}
  cast(date_trunc('year', {{ day }}) + interval '1 year' - interval '1 day' as date)
{%- endmacro %}

{% macro integer_range(n) -%}
  {{ return(adapter.dispatch('integer_range', 'olist')(n)) }}
{%- endmacro %}

{% macro duckdb__integer_range(n) -%}
  select cast(i as integer) as i from range(0, {{ n }}) as t(i)
{%- endmacro %}

{% macro snowflake__integer_range(n) -%}
  select seq4() as i from table(generator(rowcount => {{ n }}))
{%- endmacro %}

{% macro days_between(start_ts, end_ts) -%}
  {{ return(adapter.dispatch('days_between', 'olist')(start_ts, end_ts)) }}
{%- endmacro %}

{% macro default__days_between(start_ts, end_ts) -%}
  datediff('day', {{ start_ts }}, {{ end_ts }})
{%- endmacro %}

{% macro months_between_dates(start_d, end_d) -%}
  {{ return(adapter.dispatch('months_between_dates', 'olist')(start_d, end_d)) }}
{%- endmacro %}

{% macro default__months_between_dates(start_d, end_d) -%}
  datediff('month', {{ start_d }}, {{ end_d }})
{%- endmacro %}

{# The text at a dotted path of a JSON text column (null when absent or JSON null). #}
{% macro json_text(column, path) -%}
  {{ return(adapter.dispatch('json_text', 'olist')(column, path)) }}
{%- endmacro %}

{# A text that is not JSON gives null, never an error: one malformed event must not stop the batch layer. #}
{% macro duckdb__json_text(column, path) -%}
  case when json_valid({{ column }}) then json_extract_string({{ column }}, '$.{{ path }}') end
{%- endmacro %}

{% macro snowflake__json_text(column, path) -%}
  try_parse_json({{ column }}):{{ path }}::varchar
{%- endmacro %}

{# True when a JSON text column holds a value other than null at a dotted path (false when it is not JSON). #}
{% macro json_present(column, path) -%}
  {{ return(adapter.dispatch('json_present', 'olist')(column, path)) }}
{%- endmacro %}

{% macro duckdb__json_present(column, path) -%}
  coalesce(case when json_valid({{ column }}) then json_type({{ column }}, '$.{{ path }}') <> 'NULL' end, false)
{%- endmacro %}

{% macro snowflake__json_present(column, path) -%}
  coalesce(not is_null_value(try_parse_json({{ column }}):{{ path }}), false)
{%- endmacro %}

{# The number at a dotted path of a JSON text column: null when absent, not JSON, or not a number. #}
{% macro json_number(column, path, type='double') -%}
  try_cast({{ json_text(column, path) }} as {{ type }})
{%- endmacro %}

{# True when the whole of a text matches an anchored regular expression. #}
{% macro regexp_full_match(expr, pattern) -%}
  {{ return(adapter.dispatch('regexp_full_match', 'olist')(expr, pattern)) }}
{%- endmacro %}

{% macro duckdb__regexp_full_match(expr, pattern) -%}
  regexp_full_match({{ expr }}, '{{ pattern }}')
{%- endmacro %}

{% macro snowflake__regexp_full_match(expr, pattern) -%}
  regexp_like({{ expr }}, '{{ pattern }}')
{%- endmacro %}

{# A UTC timestamp (no time zone) from epoch milliseconds. #}
{% macro timestamp_from_epoch_ms(ms) -%}
  {{ return(adapter.dispatch('timestamp_from_epoch_ms', 'olist')(ms)) }}
{%- endmacro %}

{% macro duckdb__timestamp_from_epoch_ms(ms) -%}
  cast(epoch_ms(cast({{ ms }} as bigint)) as timestamp)
{%- endmacro %}

{% macro snowflake__timestamp_from_epoch_ms(ms) -%}
  to_timestamp_ntz(cast({{ ms }} as bigint), 3)
{%- endmacro %}
