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

{% macro day_spine(first_day, last_day) -%}
  {{ return(adapter.dispatch('day_spine', 'olist')(first_day, last_day)) }}
{%- endmacro %}

{% macro duckdb__day_spine(first_day, last_day) -%}
  select cast(d as date) as date_day
  from range(cast({{ first_day }} as date), cast({{ last_day }} as date) + interval 1 day, interval 1 day) as t(d)
{%- endmacro %}

{% macro snowflake__day_spine(first_day, last_day) -%}
  select date_day
  from (
    select dateadd(day, seq4(), cast({{ first_day }} as date)) as date_day
    from table(generator(rowcount => 4000))
  ) as days
  where date_day <= cast({{ last_day }} as date)
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
