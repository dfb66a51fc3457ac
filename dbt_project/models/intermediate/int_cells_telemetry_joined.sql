{{ config(materialized='table') }}
-- One row per cell with a measured window: what the model servers, the host and the client
-- reported over it (int_server_states_by_cell, int_host_metrics_by_cell,
-- int_client_metrics_by_cell), in one row. A table: both cells and server_states read it.
with windows as (
    select * from {{ ref('int_cell_windows') }}
    where window_started_at is not null
),

cells as (
    select distinct
        run_id,
        experiment,
        payload_file,
        concurrency
    from windows
),

servers as (
    select * from {{ ref('int_server_states_by_cell') }}
),

clients as (
    select * from {{ ref('int_client_metrics_by_cell') }}
),

host_metrics as (
    select * from {{ ref('int_host_metrics_by_cell') }}
),

-- GPUs and NeuronCores: the mean over the devices, the busiest device's p95, the largest
-- device's memory, the power of all GPUs together.
hosts as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        {{ stable_avg("case when metric = 'gpu_utilization_percent' then mean_value end") }}
            as gpu_utilization_mean_percent,
        max(case when metric = 'gpu_utilization_percent' then p95_value end) as gpu_utilization_p95_percent,
        max(case when metric = 'gpu_memory_used_bytes' then max_value end) as gpu_memory_used_max_bytes,
        {{ stable_sum("case when metric = 'gpu_power_watts' then mean_value end") }} as gpu_power_mean_watts,
        {{ stable_avg("case when metric = 'cpu_percent' then mean_value end") }} as host_cpu_mean_percent,
        max(case when metric = 'memory_used_bytes' then max_value end) as host_memory_used_max_bytes,
        {{ stable_avg("case when metric = 'neuroncore_utilization_percent' then mean_value end") }}
            as neuroncore_utilization_mean_percent
    from host_metrics
    group by run_id, experiment, payload_file, concurrency
),

joined as (
    select
        cells.run_id,
        cells.experiment,
        cells.payload_file,
        cells.concurrency,
        cast(coalesce(servers.count_server_samples, 0) as bigint) as count_server_samples,
        servers.requests_waiting_mean,
        servers.requests_waiting_p95,
        servers.requests_waiting_max,
        servers.requests_running_mean,
        servers.requests_running_p95,
        servers.requests_running_max,
        servers.kv_cache_usage_mean_ratio,
        servers.kv_cache_usage_max_ratio,
        servers.output_tokens_per_s as server_output_tokens_per_s,
        servers.output_tokens_rate_window_s as server_output_tokens_rate_window_s,
        servers.input_tokens_per_s as server_input_tokens_per_s,
        servers.requests_completed_per_s as server_requests_completed_per_s,
        servers.requests_in_system_mean as server_requests_in_system_mean,
        clients.concurrency_sent_mean,
        hosts.gpu_utilization_mean_percent,
        hosts.gpu_utilization_p95_percent,
        hosts.gpu_memory_used_max_bytes,
        hosts.gpu_power_mean_watts,
        hosts.host_cpu_mean_percent,
        hosts.host_memory_used_max_bytes,
        hosts.neuroncore_utilization_mean_percent,
        cast(coalesce(clients.count_client_samples, 0) as bigint) as count_client_samples,
        clients.client_cpu_mean_percent,
        clients.client_cpu_max_percent,
        clients.client_loop_lag_p95_ms,
        clients.client_loop_lag_max_ms,
        clients.is_client_saturated,
        clients.client_saturation_reason
    from cells
    left join servers
        on
            cells.run_id = servers.run_id
            and cells.experiment = servers.experiment
            and cells.payload_file = servers.payload_file
            and cells.concurrency = servers.concurrency
    left join clients
        on
            cells.run_id = clients.run_id
            and cells.experiment = clients.experiment
            and cells.payload_file = clients.payload_file
            and cells.concurrency = clients.concurrency
    left join hosts
        on
            cells.run_id = hosts.run_id
            and cells.experiment = hosts.experiment
            and cells.payload_file = hosts.payload_file
            and cells.concurrency = hosts.concurrency
),

final as (
    select * from joined
)

select * from final
