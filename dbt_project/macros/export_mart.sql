{#
    Post-hook of every mart: write the table to $FMB_RESULTS/marts/<mart>/<mart>.parquet
    ($FMB_MARTS/<mart>/<mart>.parquet when set: a folder or an s3:// prefix)
    so that BI tools and ad-hoc SQL can read it with no knowledge of dbt. On engines
    other than DuckDB the marts stay in the warehouse only.
#}
{% macro export_mart() -%}
    {{ return(adapter.dispatch('export_mart', 'fmb')()) }}
{%- endmacro %}

{% macro duckdb__export_mart() -%}
    {#- A mart kept as a view (requests: a row per request) is not copied out. -#}
    {%- if config.get('materialized') == 'view' -%}
    select 1
    {%- else -%}
    {#- The folder is a SQL string literal: a quote in the results path is doubled. -#}
    {%- set marts = env_var('FMB_MARTS', env_var('FMB_RESULTS', 'results') ~ '/marts') -%}
    {%- set folder = dbt.escape_single_quotes(marts ~ '/' ~ this.identifier) -%}
    select fmb_mkdirs('{{ folder }}');
    copy (select * from {{ this }}) to '{{ folder }}/{{ this.identifier }}.parquet' (format parquet, compression zstd)
    {%- endif -%}
{%- endmacro %}

{% macro default__export_mart() -%}
    select 1
{%- endmacro %}
