{#
    A model id without its Bedrock cross-region inference profile prefix (`us.`, `eu.`,
    `apac.`, `us-gov.`, `global.`, `ca.`, `jp.`, `au.`): `us.meta.llama3-1-8b-instruct-v1:0`
    -> `meta.llama3-1-8b-instruct-v1:0`. Any other text is returned as it is.
#}
{% macro base_model(expression) -%}
    {{ return(adapter.dispatch('base_model', 'fmb')(expression)) }}
{%- endmacro %}

{% macro default__base_model(expression) -%}
    regexp_replace({{ expression }}, '^(us|eu|apac|us-gov|global|ca|jp|au)[.]', '')
{%- endmacro %}
