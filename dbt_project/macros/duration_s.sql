{# Seconds from one timestamp to another, with microsecond precision. #}
{% macro duration_s(start_ts, end_ts) -%}
    ({{ dbt.datediff(start_ts, end_ts, 'microsecond') }} / 1000000.0)
{%- endmacro %}
