{# Seconds from one timestamp to another, as a double, with microsecond precision. #}
{% macro duration_s(start_ts, end_ts) -%}
    {{ return(adapter.dispatch('duration_s', 'fmb')(start_ts, end_ts)) }}
{%- endmacro %}

{% macro default__duration_s(start_ts, end_ts) -%}
    ({{ dbt.datediff(start_ts, end_ts, 'microsecond') }} / 1000000.0)
{%- endmacro %}

{#- Spark: microseconds since the epoch; a double, not the decimal that a division by 1000000.0 gives. -#}
{% macro spark__duration_s(start_ts, end_ts) -%}
    (cast(unix_micros({{ end_ts }}) - unix_micros({{ start_ts }}) as double) / 1000000)
{%- endmacro %}

{#- Athena (Trino): date_diff has no microsecond unit, and Athena's tables keep milliseconds. -#}
{% macro athena__duration_s(start_ts, end_ts) -%}
    (cast(date_diff('millisecond', {{ start_ts }}, {{ end_ts }}) as double) / 1000)
{%- endmacro %}

{% macro trino__duration_s(start_ts, end_ts) -%}
    {{ return(fmb.athena__duration_s(start_ts, end_ts)) }}
{%- endmacro %}
