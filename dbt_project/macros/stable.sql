{#
    A sum or mean of floating-point values depends on the order in which parallel threads
    add them up, in the last binary digit. Rounding far below any meaningful precision
    (nanoseconds for milliseconds, 1e-9 USD) makes a rebuild give identical tables.
#}
{% macro stable_avg(expression) -%}
    round(avg({{ expression }}), 9)
{%- endmacro %}

{% macro stable_sum(expression) -%}
    round(sum({{ expression }}), 9)
{%- endmacro %}
