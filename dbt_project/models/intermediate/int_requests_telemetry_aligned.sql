-- One row per measured request with any telemetry sample in its life: the model servers' state when it started (the latest server
-- sample at or before its start, while still valid) and over its life, and the host and client
-- samples of its life. A sample stands for the state from its time until the next sample of its
-- series (at most var telemetry_sample_max_age_s): the samples of a request's life are those
-- whose validity overlaps [started_at, ended_at]. Plain interval joins, no ASOF join, so the
-- model runs on any engine; without samples the joins are empty and every figure is null.
{%- set max_age_us = (var('telemetry_sample_max_age_s') * 1000000) | int %}

with requests as (
    select * from {{ ref('int_requests_classified') }}
    where not is_warmup and is_measured
),

server_states as (
    select * from {{ ref('int_server_states') }}
),

host_samples as (
    select * from {{ ref('stg_raw__host_metrics') }}
    where metric in ('gpu_utilization_percent', 'cpu_percent')
),

client_samples as (
    select
        *,
        {{ shift_timestamp('microsecond', '-1 * round(interval_s * 1000000)', 'sampled_at') }} as interval_started_at
    from {{ ref('stg_raw__client_metrics') }}
),

server_during as (
    select
        requests.run_id,
        requests.experiment,
        requests.payload_file,
        requests.concurrency,
        requests.request_index,
        -- The validity intervals of an experiment's states do not overlap: one starts at or before
        -- the request's start and covers it.
        max(case when server_states.scraped_at <= requests.started_at then server_states.requests_waiting end)
            as requests_waiting_at_start,
        max(case when server_states.scraped_at <= requests.started_at then server_states.requests_running end)
            as requests_running_at_start,
        max(case when server_states.scraped_at <= requests.started_at then server_states.kv_cache_usage_ratio end)
            as kv_cache_usage_at_start_ratio,
        count(*) as count_server_samples,
        {{ stable_avg('server_states.requests_waiting') }} as requests_waiting_mean,
        max(server_states.requests_waiting) as requests_waiting_max,
        {{ stable_avg('server_states.requests_running') }} as requests_running_mean,
        max(server_states.requests_running) as requests_running_max,
        max(server_states.kv_cache_usage_ratio) as kv_cache_usage_max_ratio
    from requests
    inner join server_states
        on
            requests.run_id = server_states.run_id
            and requests.experiment = server_states.experiment
            and requests.ended_at >= server_states.scraped_at
            and requests.started_at < server_states.valid_until
    group by requests.run_id, requests.experiment, requests.payload_file, requests.concurrency, requests.request_index
),

host_timelines as (
    select
        run_id,
        metric,
        value,
        sampled_at,
        lead(sampled_at) over (partition by run_id, host, source, device, metric order by sampled_at)
            as next_sampled_at,
        {{ shift_timestamp('microsecond', max_age_us, 'sampled_at') }} as stale_at
    from host_samples
),

host_valid as (
    select
        run_id,
        metric,
        value,
        sampled_at,
        case
            when next_sampled_at is not null and next_sampled_at < stale_at then next_sampled_at
            else stale_at
        end as valid_until
    from host_timelines
),

host_during as (
    select
        requests.run_id,
        requests.experiment,
        requests.payload_file,
        requests.concurrency,
        requests.request_index,
        {{ stable_avg("case when host_valid.metric = 'gpu_utilization_percent' then host_valid.value end") }}
            as gpu_utilization_mean_percent,
        {{ stable_avg("case when host_valid.metric = 'cpu_percent' then host_valid.value end") }}
            as host_cpu_mean_percent
    from requests
    inner join host_valid
        on
            requests.run_id = host_valid.run_id
            and requests.ended_at >= host_valid.sampled_at
            and requests.started_at < host_valid.valid_until
    group by requests.run_id, requests.experiment, requests.payload_file, requests.concurrency, requests.request_index
),

-- A client sample describes the interval before it: those whose interval overlaps the life.
client_during as (
    select
        requests.run_id,
        requests.experiment,
        requests.payload_file,
        requests.concurrency,
        requests.request_index,
        max(client_samples.loop_lag_max_ms) as client_loop_lag_max_ms
    from requests
    inner join client_samples
        on
            requests.run_id = client_samples.run_id
            and requests.started_at <= client_samples.sampled_at
            and requests.ended_at > client_samples.interval_started_at
    group by requests.run_id, requests.experiment, requests.payload_file, requests.concurrency, requests.request_index
),

final as (
    select
        requests.run_id,
        requests.experiment,
        requests.payload_file,
        requests.concurrency,
        requests.request_index,
        requests.collection_session,
        requests.model_copy,
        requests.started_at,
        requests.ended_at,
        requests.status,
        requests.ttft_ms,
        requests.e2e_latency_ms,
        coalesce(server_during.count_server_samples, 0) as count_server_samples,
        server_during.requests_waiting_at_start,
        server_during.requests_running_at_start,
        server_during.kv_cache_usage_at_start_ratio,
        server_during.requests_waiting_mean,
        server_during.requests_waiting_max,
        server_during.requests_running_mean,
        server_during.requests_running_max,
        server_during.kv_cache_usage_max_ratio,
        host_during.gpu_utilization_mean_percent,
        host_during.host_cpu_mean_percent,
        client_during.client_loop_lag_max_ms
    from requests
    left join server_during
        on
            requests.run_id = server_during.run_id
            and requests.experiment = server_during.experiment
            and requests.payload_file = server_during.payload_file
            and requests.concurrency = server_during.concurrency
            and requests.request_index = server_during.request_index
    left join host_during
        on
            requests.run_id = host_during.run_id
            and requests.experiment = host_during.experiment
            and requests.payload_file = host_during.payload_file
            and requests.concurrency = host_during.concurrency
            and requests.request_index = host_during.request_index
    left join client_during
        on
            requests.run_id = client_during.run_id
            and requests.experiment = client_during.experiment
            and requests.payload_file = client_during.payload_file
            and requests.concurrency = client_during.concurrency
            and requests.request_index = client_during.request_index
    -- Only requests with some sample in their life: a run without telemetry adds no row (and no
    -- request-sized table to the build).
    where
        server_during.run_id is not null
        or host_during.run_id is not null
        or client_during.run_id is not null
)

select * from final
