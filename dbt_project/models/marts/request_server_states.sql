-- One row per measured request with any telemetry sample in its life: the model servers' state when it started and over its life,
-- the host's GPU and CPU and the client's event-loop lag meanwhile, beside its latency.
with aligned as (
    select * from {{ ref('int_requests_telemetry_aligned') }}
),

final as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        request_index,
        collection_session,
        model_copy,
        started_at,
        ended_at,
        status,
        ttft_ms,
        e2e_latency_ms,
        count_server_samples,
        requests_waiting_at_start,
        requests_running_at_start,
        kv_cache_usage_at_start_ratio,
        requests_waiting_mean,
        requests_waiting_max,
        requests_running_mean,
        requests_running_max,
        kv_cache_usage_max_ratio,
        gpu_utilization_mean_percent,
        host_cpu_mean_percent,
        client_loop_lag_max_ms
    from aligned
)

select * from final
