{#
    Exact percentile (continuous, linear interpolation between the two nearest values)
    of an expression over the rows of a group; NULLs are ignored.
    DuckDB and Postgres compute it exactly; Spark and Trino/Athena only approximately.
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

{% macro spark__percentile(expression, fraction) -%}
    percentile({{ expression }}, {{ fraction }})
{%- endmacro %}

{% macro trino__percentile(expression, fraction) -%}
    approx_percentile({{ expression }}, {{ fraction }})
{%- endmacro %}

{% macro athena__percentile(expression, fraction) -%}
    approx_percentile({{ expression }}, {{ fraction }})
{%- endmacro %}
