{#
    Type names for casts, per engine. DuckDB and Trino/Athena say varchar; Spark says string
    (its varchar needs a length).
#}
{% macro string_type() -%}
    {{ return(adapter.dispatch('string_type', 'fmb')()) }}
{%- endmacro %}

{% macro default__string_type() -%}
    varchar
{%- endmacro %}

{% macro spark__string_type() -%}
    string
{%- endmacro %}

{#
    An instant in time (the raw tables' UTC timestamps). DuckDB keeps the time zone;
    Spark's timestamp is an instant shown in the session time zone (UTC in profiles.yml);
    Athena cannot store a time zone in a table, so there it is a UTC wall-clock timestamp.
#}
{% macro timestamp_tz_type() -%}
    {{ return(adapter.dispatch('timestamp_tz_type', 'fmb')()) }}
{%- endmacro %}

{% macro default__timestamp_tz_type() -%}
    timestamp with time zone
{%- endmacro %}

{% macro spark__timestamp_tz_type() -%}
    timestamp
{%- endmacro %}

{% macro athena__timestamp_tz_type() -%}
    timestamp
{%- endmacro %}

{#
    Model contracts (every mart's YAML) name column types as DuckDB does. dbt checks a
    contract by casting NULL to each declared type; on Spark the names are translated first.
    (An override of dbt's own get_empty_schema_sql for Spark: dbt looks in the root project
    before its own macros.)
#}
{% macro spark__get_empty_schema_sql(columns) -%}
    {%- set translated = {} -%}
    {%- for name in columns -%}
        {%- set column = {} -%}
        {%- do column.update(columns[name]) -%}
        {%- if column.get('data_type') is not none -%}
            {%- do column.update({'data_type': fmb.spark_type_name(column['data_type'])}) -%}
        {%- endif -%}
        {%- do translated.update({name: column}) -%}
    {%- endfor -%}
    {{ return(dbt.default__get_empty_schema_sql(translated)) }}
{%- endmacro %}

{#- Spark's name for a column type named as DuckDB names it (sources.yml, the marts' contracts). -#}
{% macro spark_type_name(data_type) -%}
    {%- set names = {'varchar': 'string', 'timestamp with time zone': 'timestamp', 'float[]': 'array<float>'} -%}
    {{- return(names.get(data_type | lower, data_type)) -}}
{%- endmacro %}

{#
    Positive infinity as a double (an error-adjusted percentile that falls on a failed request).
    DuckDB and Spark cast the text; Trino/Athena has a function.
#}
{% macro infinity() -%}
    {{ return(adapter.dispatch('infinity', 'fmb')()) }}
{%- endmacro %}

{% macro default__infinity() -%}
    cast('Infinity' as double)
{%- endmacro %}

{% macro athena__infinity() -%}
    infinity()
{%- endmacro %}
