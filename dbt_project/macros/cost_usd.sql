{#
    What running costs, in USD: instance pricing charges the hourly price x instance count
    for every second; token pricing charges prompt and completion tokens per 1,000.
    NULL when there is no price (pricing_type is NULL). Every column it reads is an argument.
#}
{% macro cost_usd(
    pricing_type,
    price_per_hour_usd,
    instance_count,
    input_per_1k_tokens_usd,
    output_per_1k_tokens_usd,
    seconds,
    prompt_tokens,
    completion_tokens
) -%}
    case
        when {{ pricing_type }} = 'instance'
            then {{ price_per_hour_usd }} * {{ instance_count }} * {{ seconds }} / 3600e0
        when {{ pricing_type }} = 'token'
            then coalesce({{ prompt_tokens }}, 0) / 1000e0 * {{ input_per_1k_tokens_usd }}
                + coalesce({{ completion_tokens }}, 0) / 1000e0 * {{ output_per_1k_tokens_usd }}
    end
{%- endmacro %}
