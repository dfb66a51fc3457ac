-- One row per cell and metric of each device sampled: the mean and the maximum of the host
-- telemetry samples taken while the cell's measured requests ran.
-- The same windows as int_cells_aggregated (int_cell_windows): from the first start to the last
-- end of the cell's measured requests, one window per collection session (a cell resumed by
-- `fmb collect --resume` never counts the pause between its sessions).
with session_windows as (
    select * from {{ ref('int_cell_windows') }}
    where window_started_at is not null
),

samples as (
    select * from {{ ref('stg_raw__host_metrics') }}
),

in_windows as (
    select
        session_windows.run_id,
        session_windows.experiment,
        session_windows.payload_file,
        session_windows.concurrency,
        samples.host,
        samples.source,
        samples.device,
        samples.metric,
        samples.unit,
        samples.sampled_at,
        samples.value
    from session_windows
    inner join samples
        on
            session_windows.run_id = samples.run_id
            and session_windows.window_started_at <= samples.sampled_at
            and session_windows.window_ended_at >= samples.sampled_at
),

final as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        host,
        source,
        device,
        metric,
        unit,
        count(*) as count_samples,
        {{ stable_avg('value') }} as mean_value,
        round({{ percentile('value', 0.95) }}, 9) as p95_value,
        max(value) as max_value,
        min(sampled_at) as first_sampled_at,
        max(sampled_at) as last_sampled_at
    from in_windows
    group by run_id, experiment, payload_file, concurrency, host, source, device, metric, unit
)

select * from final
