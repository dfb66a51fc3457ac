-- One row per cell: the model servers', the host's and the client's state over the cell's
-- measured window, beside fmb's own throughput, and whether the client was saturated.
with cells as (
    select * from {{ ref('cells') }}
),

telemetry as (
    select * from {{ ref('int_cells_telemetry_joined') }}
),

joined as (
    select
        cells.run_id,
        cells.experiment,
        cells.payload_file,
        cells.concurrency,
        cells.output_tokens_per_s as client_output_tokens_per_s,
        telemetry.count_server_samples,
        telemetry.requests_waiting_mean,
        telemetry.requests_waiting_p95,
        telemetry.requests_waiting_max,
        telemetry.requests_running_mean,
        telemetry.requests_running_p95,
        telemetry.requests_running_max,
        telemetry.kv_cache_usage_mean_ratio,
        telemetry.kv_cache_usage_max_ratio,
        telemetry.server_output_tokens_per_s,
        telemetry.server_output_tokens_rate_window_s,
        telemetry.server_input_tokens_per_s,
        telemetry.server_requests_completed_per_s,
        telemetry.server_requests_in_system_mean,
        telemetry.concurrency_sent_mean,
        telemetry.gpu_utilization_mean_percent,
        telemetry.gpu_utilization_p95_percent,
        telemetry.gpu_memory_used_max_bytes,
        telemetry.gpu_power_mean_watts,
        telemetry.host_cpu_mean_percent,
        telemetry.host_memory_used_max_bytes,
        telemetry.neuroncore_utilization_mean_percent,
        telemetry.count_client_samples,
        telemetry.client_cpu_mean_percent,
        telemetry.client_cpu_max_percent,
        telemetry.client_loop_lag_p95_ms,
        telemetry.client_loop_lag_max_ms,
        telemetry.is_client_saturated,
        telemetry.client_saturation_reason
    from cells
    left join telemetry
        on
            cells.run_id = telemetry.run_id
            and cells.experiment = telemetry.experiment
            and cells.payload_file = telemetry.payload_file
            and cells.concurrency = telemetry.concurrency
),

final as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        cast(coalesce(count_server_samples, 0) as bigint) as count_server_samples,
        requests_waiting_mean,
        requests_waiting_p95,
        requests_waiting_max,
        requests_running_mean,
        requests_running_p95,
        requests_running_max,
        kv_cache_usage_mean_ratio,
        kv_cache_usage_max_ratio,
        server_output_tokens_per_s,
        server_output_tokens_rate_window_s,
        server_input_tokens_per_s,
        server_requests_completed_per_s,
        client_output_tokens_per_s,
        server_output_tokens_per_s / nullif(client_output_tokens_per_s, 0) as server_to_client_tokens_ratio,
        -- Null (unknown) when either figure is missing, or when the scrapes inside the window span
        -- too little time to judge: a server that counts a request's tokens when it ends (llama.cpp)
        -- moves its counter in steps, so a short window's rate is mostly noise.
        case
            when server_output_tokens_rate_window_s >= {{ var('server_tokens_rate_min_window_s') }}
                then
                    abs(server_output_tokens_per_s / nullif(client_output_tokens_per_s, 0) - 1)
                    > {{ var('server_client_tokens_tolerance') }}
        end as is_tokens_per_s_disagreement,
        server_requests_in_system_mean,
        concurrency_sent_mean,
        gpu_utilization_mean_percent,
        gpu_utilization_p95_percent,
        gpu_memory_used_max_bytes,
        gpu_power_mean_watts,
        host_cpu_mean_percent,
        host_memory_used_max_bytes,
        neuroncore_utilization_mean_percent,
        cast(coalesce(count_client_samples, 0) as bigint) as count_client_samples,
        client_cpu_mean_percent,
        client_cpu_max_percent,
        client_loop_lag_p95_ms,
        client_loop_lag_max_ms,
        is_client_saturated,
        client_saturation_reason,
        {{ percentile_method() }} as percentile_method
    from joined
)

select * from final
