-- One row per sample of a model server metric that fmb knows (seed server_metric_names): the
-- sample in its canonical measure and unit, and for a counter its increase and rate per second
-- since the previous scrape of the same series (run, experiment, model copy, metric, labels).
with samples as (
    select * from {{ ref('stg_raw__server_metrics') }}
),

names as (
    select * from {{ ref('server_metric_names') }}
),

named as (
    select
        samples.run_id,
        samples.experiment,
        samples.model_copy,
        samples.scraped_at,
        samples.metric,
        samples.labels,
        names.server,
        names.measure,
        names.kind,
        samples.value * names.scale as value
    from samples
    inner join names on samples.metric = names.metric
),

with_previous as (
    select
        *,
        lag(value) over (
            partition by run_id, experiment, model_copy, metric, labels order by scraped_at
        ) as previous_value,
        lag(scraped_at) over (
            partition by run_id, experiment, model_copy, metric, labels order by scraped_at
        ) as previous_scraped_at
    from named
),

-- A counter that went down was restarted (the server restarted): it counted from zero since
-- the previous scrape, so its increase is its value.
increases as (
    select
        *,
        {{ duration_s('previous_scraped_at', 'scraped_at') }} as interval_s,
        case
            when kind = 'counter' and previous_value is not null
                then (case when value >= previous_value then value - previous_value else value end)
        end as increase,
        coalesce(kind = 'counter' and value < previous_value, false) as is_counter_reset
    from with_previous
),

final as (
    select
        run_id,
        experiment,
        model_copy,
        scraped_at,
        server,
        metric,
        labels,
        measure,
        kind,
        value,
        previous_scraped_at,
        interval_s,
        increase,
        is_counter_reset,
        case when interval_s > 0 then increase / interval_s end as rate_per_s
    from increases
)

select * from final
