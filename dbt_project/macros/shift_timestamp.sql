{#
    A timestamp moved by an amount (a SQL expression, negative moves it back) of seconds or
    microseconds: shift_timestamp('microsecond', 'round(interval_s * 1000000)', 'sampled_at').
#}
{% macro shift_timestamp(datepart, amount, timestamp) -%}
    {%- if datepart not in ('second', 'microsecond') -%}
        {{ exceptions.raise_compiler_error("shift_timestamp: datepart must be 'second' or 'microsecond', not " ~ datepart) }}
    {%- endif -%}
    {{ return(adapter.dispatch('shift_timestamp', 'fmb')(datepart, amount, timestamp)) }}
{%- endmacro %}

{% macro default__shift_timestamp(datepart, amount, timestamp) -%}
    {{ dbt.dateadd(datepart, amount, timestamp) }}
{%- endmacro %}

{#- Spark: through microseconds since the epoch (its dateadd counts whole days). -#}
{% macro spark__shift_timestamp(datepart, amount, timestamp) -%}
    {%- set factor = '' if datepart == 'microsecond' else ' * 1000000' -%}
    timestamp_micros(unix_micros({{ timestamp }}) + cast(({{ amount }}){{ factor }} as bigint))
{%- endmacro %}

{#- Athena (Trino): date_add has no microsecond unit; Athena's tables keep milliseconds. -#}
{% macro athena__shift_timestamp(datepart, amount, timestamp) -%}
    {%- if datepart == 'microsecond' -%}
    date_add('millisecond', cast(round(({{ amount }}) / 1000e0) as bigint), {{ timestamp }})
    {%- else -%}
    date_add('second', cast({{ amount }} as bigint), {{ timestamp }})
    {%- endif -%}
{%- endmacro %}

{% macro trino__shift_timestamp(datepart, amount, timestamp) -%}
    {{ return(fmb.athena__shift_timestamp(datepart, amount, timestamp)) }}
{%- endmacro %}
