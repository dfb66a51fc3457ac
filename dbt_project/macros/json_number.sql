{#
    A number in a JSON text column at a JSON path ('$.report.accuracy_budget'), as a double;
    NULL when the key is missing, null or not a number.
#}
{% macro json_number(column, path) -%}
    {{ return(adapter.dispatch('json_number', 'fmb')(column, path)) }}
{%- endmacro %}

{% macro default__json_number(column, path) -%}
    try_cast(json_extract_string({{ column }}, '{{ path }}') as double)
{%- endmacro %}

{% macro spark__json_number(column, path) -%}
    try_cast(get_json_object({{ column }}, '{{ path }}') as double)
{%- endmacro %}

{% macro athena__json_number(column, path) -%}
    try_cast(json_extract_scalar({{ column }}, '{{ path }}') as double)
{%- endmacro %}

{% macro trino__json_number(column, path) -%}
    {{ return(fmb.athena__json_number(column, path)) }}
{%- endmacro %}
