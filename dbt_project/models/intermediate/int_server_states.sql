-- One row per run, experiment and scrape time of any of its model copies: the state of the
-- experiment's model servers then (the copies summed, the KV cache usage their mean), valid
-- from that scrape until the next one (at most var telemetry_sample_max_age_s).
{%- set measures = [
    ('requests_waiting', 'sum', 'value'),
    ('requests_running', 'sum', 'value'),
    ('kv_cache_usage_ratio', 'avg', 'value'),
    ('output_tokens_per_s', 'sum', 'rate_per_s'),
    ('input_tokens_per_s', 'sum', 'rate_per_s'),
    ('requests_completed_per_s', 'sum', 'rate_per_s'),
] %}
{%- set max_age_us = (var('telemetry_sample_max_age_s') * 1000000) | int %}

with samples as (
    select * from {{ ref('int_server_metrics_normalized') }}
),

-- One row per scrape of a copy: its label series summed (a ratio averaged), a counter as its
-- rate since the copy's previous scrape.
copy_scrapes as (
    select
        run_id,
        experiment,
        model_copy,
        scraped_at,
    {%- for name, aggregate, column in measures %}
        {%- set measure = name | replace('_per_s', '') %}
        {{ aggregate }}(case when measure = '{{ measure }}' then {{ column }} end) as {{ name }}
        {{- ',' if not loop.last }}
    {%- endfor %}
    from samples
    group by run_id, experiment, model_copy, scraped_at
),

-- Each copy's change since its own previous scrape: summed up over the experiment's scrapes in
-- time order, these changes give the sum of every copy's latest value at each scrape (in one
-- pass, however many copies there are).
copy_changes as (
    select
        run_id,
        experiment,
        scraped_at,
        {%- for name, aggregate, column in measures %}
            coalesce({{ name }}, 0) - coalesce(
                lag({{ name }}) over (partition by run_id, experiment, model_copy order by scraped_at), 0
            ) as {{ name }}_change,
            (case when {{ name }} is not null then 1 else 0 end) - coalesce(
                lag(case when {{ name }} is not null then 1 else 0 end) over (
                    partition by run_id, experiment, model_copy order by scraped_at
                ),
                0
            ) as {{ name }}_copies_change,
        {%- endfor %}
        case
            when row_number() over (partition by run_id, experiment, model_copy order by scraped_at) = 1 then 1
            else 0
        end as new_copy
    from copy_scrapes
),

instants as (
    select
        run_id,
        experiment,
        scraped_at,
        {%- for name, aggregate, column in measures %}
            sum({{ name }}_change) as {{ name }}_change,
            sum({{ name }}_copies_change) as {{ name }}_copies_change,
        {%- endfor %}
        sum(new_copy) as new_copies
    from copy_changes
    group by run_id, experiment, scraped_at
),

running as (
    select
        run_id,
        experiment,
        scraped_at,
        {%- for name, aggregate, column in measures %}
            sum({{ name }}_change) over (
                partition by run_id, experiment order by scraped_at rows between unbounded preceding and current row
            ) as {{ name }}_total,
            sum({{ name }}_copies_change) over (
                partition by run_id, experiment order by scraped_at rows between unbounded preceding and current row
            ) as {{ name }}_copies,
        {%- endfor %}
        sum(new_copies) over (
            partition by run_id, experiment order by scraped_at rows between unbounded preceding and current row
        ) as count_model_copies,
        lead(scraped_at) over (partition by run_id, experiment order by scraped_at) as next_scraped_at,
        {{ shift_timestamp('microsecond', max_age_us, 'scraped_at') }} as stale_at
    from instants
),

final as (
    select
        run_id,
        experiment,
        scraped_at,
        case
            when next_scraped_at is not null and next_scraped_at < stale_at then next_scraped_at
            else stale_at
        end as valid_until,
        count_model_copies,
    {%- for name, aggregate, column in measures %}
        {%- if aggregate == 'avg' %}
            case
                when {{ name }}_copies > 0 then round({{ name }}_total / {{ name }}_copies, 9)
            end as {{ name }}
        {%- else %}
            case when {{ name }}_copies > 0 then round({{ name }}_total, 9) end as {{ name }}
        {%- endif %}
        {{- ',' if not loop.last }}
    {%- endfor %}
    from running
)

select * from final
