{# Bronze keeps every ingested version of a row, deletes included (_deleted = true, the row's last image);
   silver keeps the newest version per key, unless that version is the key's delete. On a tie of _changed_at
   (a row deleted and inserted again in one transaction) the row that is there wins. #}
{% macro latest_version(relation, key_columns) -%}
  select *
  from (
    select
      *,
      row_number() over (
        partition by {{ key_columns | join(', ') }}
        order by _changed_at desc, coalesce(_deleted, false)
      ) as _version_rank
    from {{ relation }}
  ) as versions
  where _version_rank = 1 and not coalesce(_deleted, false)
{%- endmacro %}
