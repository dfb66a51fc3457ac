{#
    on-run-start (dbt_project.yml): make the raw Parquet tables readable as source('raw', ...).

    DuckDB reads the files in place through sources.yml's meta.external_location, and Athena
    reads Glue tables over the same files (README: the DDL), so neither needs a statement here.
    Spark gets one external (unmanaged) table per raw table over its folder, with the columns
    sources.yml declares, made again on every run so that it lists the files there now: every
    Parquet file below the folder (recursiveFileLookup, so the hive folders add no columns:
    each file holds its partition columns itself; hidden files, such as one being written, are
    left out). Columns are matched by name, so older files lacking newer columns read as NULL,
    as DuckDB's union_by_name does.
#}
{% macro create_raw_sources() -%}
    {{ return(adapter.dispatch('create_raw_sources', 'fmb')()) }}
{%- endmacro %}

{% macro default__create_raw_sources() -%}
{%- endmacro %}

{% macro spark__create_raw_sources() -%}
    {%- if execute -%}
        {%- set root = env_var('FMB_RESULTS', 'results') ~ '/raw' -%}
        {%- set schemas = [] -%}
        {%- for source in graph.sources.values() | selectattr('source_name', 'equalto', 'raw') -%}
            {%- if source.schema not in schemas -%}
                {%- do run_query('create schema if not exists ' ~ source.schema) -%}
                {%- do schemas.append(source.schema) -%}
            {%- endif -%}
            {%- set folder = root ~ '/' ~ source.meta['glob'].split('/')[0] -%}
            {%- set table = source.schema ~ '.' ~ source.identifier -%}
            {%- set columns = [] -%}
            {%- for column in source.columns.values() -%}
                {%- do columns.append('`' ~ column.name ~ '` ' ~ fmb.spark_type_name(column.data_type)) -%}
            {%- endfor -%}
            {%- do run_query('drop table if exists ' ~ table) -%}
            {%- do run_query(
                'create table ' ~ table ~ ' (' ~ columns | join(', ') ~ ') using parquet options ('
                ~ "path '" ~ dbt.escape_single_quotes(folder) ~ "', "
                ~ "recursiveFileLookup 'true', pathGlobFilter '*.parquet')"
            ) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
