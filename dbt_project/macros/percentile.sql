{#
    Exact percentile (continuous, linear interpolation between the two nearest values)
    of an expression over the rows of a group; NULLs are ignored.
    DuckDB, Postgres and Spark compute it exactly; Trino/Athena only approximately
    (approx_percentile), and the marts with percentiles say which in percentile_method.
#}
{% macro percentile(expression, fraction) -%}
    {{ return(adapter.dispatch('percentile', 'fmb')(expression, fraction)) }}
{%- endmacro %}

{% macro duckdb__percentile(expression, fraction) -%}
    quantile_cont({{ expression }}, {{ fraction }})
{%- endmacro %}

{% macro default__percentile(expression, fraction) -%}
    percentile_cont({{ fraction }}) within group (order by {{ expression }})
{%- endmacro %}

{#- Spark's percentile is exact, with the same interpolation as quantile_cont. -#}
{% macro spark__percentile(expression, fraction) -%}
    percentile({{ expression }}, {{ fraction }})
{%- endmacro %}

{% macro trino__percentile(expression, fraction) -%}
    approx_percentile({{ expression }}, {{ fraction }})
{%- endmacro %}

{% macro athena__percentile(expression, fraction) -%}
    approx_percentile({{ expression }}, {{ fraction }})
{%- endmacro %}

{#
    How this engine's percentile macro computes: 'exact' or 'approximate', as a SQL string
    literal, for the percentile_method column of the marts that hold percentiles.
#}
{% macro percentile_method() -%}
    {{ return(adapter.dispatch('percentile_method', 'fmb')()) }}
{%- endmacro %}

{% macro default__percentile_method() -%}
    'exact'
{%- endmacro %}

{% macro trino__percentile_method() -%}
    'approximate'
{%- endmacro %}

{% macro athena__percentile_method() -%}
    'approximate'
{%- endmacro %}
