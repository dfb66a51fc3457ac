-- One row per cell with server samples in its measured window: the model servers' queue,
-- batch and KV cache over the window, and their token rates.
with windows as (
    select * from {{ ref('int_cell_windows') }}
),

states as (
    select * from {{ ref('int_server_states') }}
),

counters as (
    select * from {{ ref('int_server_metrics_normalized') }}
    where kind = 'counter' and increase is not null
),

states_in_windows as (
    select
        windows.run_id,
        windows.experiment,
        windows.payload_file,
        windows.concurrency,
        states.scraped_at,
        states.requests_waiting,
        states.requests_running,
        states.requests_waiting + states.requests_running as requests_in_system,
        states.kv_cache_usage_ratio
    from windows
    inner join states
        on
            windows.run_id = states.run_id
            and windows.experiment = states.experiment
            and windows.window_started_at <= states.scraped_at
            and windows.window_ended_at >= states.scraped_at
),

gauges as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        count(*) as count_server_samples,
        {{ stable_avg('requests_waiting') }} as requests_waiting_mean,
        {{ percentile('requests_waiting', 0.95) }} as requests_waiting_p95,
        max(requests_waiting) as requests_waiting_max,
        {{ stable_avg('requests_running') }} as requests_running_mean,
        {{ percentile('requests_running', 0.95) }} as requests_running_p95,
        max(requests_running) as requests_running_max,
        {{ stable_avg('requests_in_system') }} as requests_in_system_mean,
        {{ stable_avg('kv_cache_usage_ratio') }} as kv_cache_usage_mean_ratio,
        max(kv_cache_usage_ratio) as kv_cache_usage_max_ratio
    from states_in_windows
    group by run_id, experiment, payload_file, concurrency
),

-- Counter increases between two scrapes that both lie in the window, over the time between
-- them: a series' rate over the window; the series (and model copies) are summed.
increases_in_windows as (
    select
        windows.run_id,
        windows.experiment,
        windows.payload_file,
        windows.concurrency,
        counters.model_copy,
        counters.metric,
        counters.labels,
        counters.measure,
        counters.increase,
        counters.interval_s
    from windows
    inner join counters
        on
            windows.run_id = counters.run_id
            and windows.experiment = counters.experiment
            and windows.window_started_at <= counters.previous_scraped_at
            and windows.window_ended_at >= counters.scraped_at
),

series_rates as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        measure,
        sum(increase) / nullif(sum(interval_s), 0) as rate_per_s,
        sum(interval_s) as rate_window_s
    from increases_in_windows
    group by run_id, experiment, payload_file, concurrency, model_copy, metric, labels, measure
),

rates as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        round(sum(case when measure = 'output_tokens' then rate_per_s end), 9) as output_tokens_per_s,
        round(min(case when measure = 'output_tokens' then rate_window_s end), 9) as output_tokens_rate_window_s,
        round(sum(case when measure = 'input_tokens' then rate_per_s end), 9) as input_tokens_per_s,
        round(sum(case when measure = 'requests_completed' then rate_per_s end), 9) as requests_completed_per_s
    from series_rates
    group by run_id, experiment, payload_file, concurrency
),

cells as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency
    from gauges
    union
    select
        run_id,
        experiment,
        payload_file,
        concurrency
    from rates
),

final as (
    select
        cells.run_id,
        cells.experiment,
        cells.payload_file,
        cells.concurrency,
        coalesce(gauges.count_server_samples, 0) as count_server_samples,
        gauges.requests_waiting_mean,
        gauges.requests_waiting_p95,
        gauges.requests_waiting_max,
        gauges.requests_running_mean,
        gauges.requests_running_p95,
        gauges.requests_running_max,
        gauges.requests_in_system_mean,
        gauges.kv_cache_usage_mean_ratio,
        gauges.kv_cache_usage_max_ratio,
        rates.output_tokens_per_s,
        rates.output_tokens_rate_window_s,
        rates.input_tokens_per_s,
        rates.requests_completed_per_s
    from cells
    left join gauges
        on
            cells.run_id = gauges.run_id
            and cells.experiment = gauges.experiment
            and cells.payload_file = gauges.payload_file
            and cells.concurrency = gauges.concurrency
    left join rates
        on
            cells.run_id = rates.run_id
            and cells.experiment = rates.experiment
            and cells.payload_file = rates.payload_file
            and cells.concurrency = rates.concurrency
)

select * from final
