-- One row per run, experiment, CloudWatch namespace, metric, dimensions and statistic: the
-- datapoints of the latest fetch whose period overlaps the experiment's window, summed,
-- averaged and their maximum taken, beside what fmb itself counted and measured.
with datapoints as (
    select * from {{ ref('int_endpoint_metrics_latest') }}
),

experiments as (
    select * from {{ ref('int_experiment_windows') }}
),

in_window as (
    select
        datapoints.*,
        experiments.count_finished_requests,
        experiments.e2e_latency_mean_ms
    from datapoints
    inner join experiments
        on
            datapoints.run_id = experiments.run_id
            and datapoints.experiment = experiments.experiment
            and datapoints.period_started_at <= experiments.window_ended_at
            and {{ shift_timestamp('second', 'datapoints.period_s', 'datapoints.period_started_at') }}
            > experiments.window_started_at
),

sample_counts as (
    select
        run_id,
        experiment,
        namespace,
        metric,
        dimensions,
        period_started_at,
        value as sample_count
    from in_window
    where stat = 'SampleCount'
),

-- An Average datapoint is weighted by the SampleCount of the same period when it was fetched.
weighted as (
    select
        in_window.*,
        sample_counts.sample_count
    from in_window
    left join sample_counts
        on
            in_window.stat = 'Average'
            and in_window.run_id = sample_counts.run_id
            and in_window.experiment = sample_counts.experiment
            and in_window.namespace = sample_counts.namespace
            and in_window.metric = sample_counts.metric
            and in_window.dimensions = sample_counts.dimensions
            and in_window.period_started_at = sample_counts.period_started_at
),

aggregated as (
    select
        run_id,
        experiment,
        namespace,
        metric,
        dimensions,
        stat,
        max(fetched_at) as fetched_at,
        max(unit) as unit,
        count(*) as count_periods,
        count(sample_count) as count_weighted_periods,
        min(period_started_at) as first_period_started_at,
        max(period_started_at) as last_period_started_at,
        sum(value) as value_total,
        avg(value) as value_plain_mean,
        sum(value * sample_count) / nullif(sum(sample_count), 0) as value_weighted_mean,
        max(value) as value_max,
        min(value) as value_min,
        max(count_finished_requests) as count_client_requests,
        max(e2e_latency_mean_ms) as client_e2e_mean_ms
    from weighted
    group by run_id, experiment, namespace, metric, dimensions, stat
),

final as (
    select
        run_id,
        experiment,
        namespace,
        metric,
        dimensions,
        stat,
        fetched_at,
        unit,
        case when stat in ('Sum', 'SampleCount') then round(value_total, 9) end as value_sum,
        round(case
            when stat = 'Average' and count_weighted_periods = count_periods and value_weighted_mean is not null
                then value_weighted_mean
            else value_plain_mean
        end, 9) as value_mean,
        value_max,
        value_min,
        count_periods,
        first_period_started_at,
        last_period_started_at,
        count_client_requests,
        client_e2e_mean_ms
    from aggregated
)

select * from final
