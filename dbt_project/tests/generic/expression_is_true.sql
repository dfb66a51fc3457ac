{#
    Fails for every row where the expression is false (NULL counts as true, so that an
    invariant such as `ttft_p50_ms <= ttft_p99_ms` holds for cells without streaming).
#}
{% test expression_is_true(model, expression) %}
select *
from {{ model }}
where not coalesce({{ expression }}, true)
{% endtest %}
