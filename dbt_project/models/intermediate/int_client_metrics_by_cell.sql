-- One row per cell with client samples in its measured window: how busy the collector was
-- (CPU, event-loop lag), how many requests it kept in flight, and whether it was saturated.
with windows as (
    select * from {{ ref('int_cell_windows') }}
),

samples as (
    select * from {{ ref('stg_raw__client_metrics') }}
),

in_windows as (
    select
        windows.run_id,
        windows.experiment,
        windows.payload_file,
        windows.concurrency,
        windows.collection_session,
        samples.host,
        samples.pid,
        samples.cpu_percent,
        samples.loop_lag_max_ms,
        samples.in_flight
    from windows
    inner join samples
        on
            windows.run_id = samples.run_id
            and windows.window_started_at <= samples.sampled_at
            and windows.window_ended_at >= samples.sampled_at
),

-- Each collector process on its own; several processes (writers) of one run are combined
-- below: the busiest one decides saturation; the requests in flight of the processes of one
-- collection session add up, and a cell resumed in another session (`fmb collect --resume`,
-- another process) averages its sessions, weighted by their samples.
processes as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        collection_session,
        host,
        pid,
        count(*) as count_samples,
        avg(cpu_percent) as cpu_mean_percent,
        max(cpu_percent) as cpu_max_percent,
        {{ percentile('loop_lag_max_ms', 0.95) }} as loop_lag_p95_ms,
        max(loop_lag_max_ms) as loop_lag_max_ms,
        avg(in_flight) as in_flight_mean
    from in_windows
    group by run_id, experiment, payload_file, concurrency, collection_session, host, pid
),

sessions as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        collection_session,
        sum(in_flight_mean) as in_flight_mean,
        max(count_samples) as count_samples
    from processes
    group by run_id, experiment, payload_file, concurrency, collection_session
),

sent as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        sum(in_flight_mean * count_samples) / sum(count_samples) as concurrency_sent_mean
    from sessions
    group by run_id, experiment, payload_file, concurrency
),

cells as (
    select
        processes.run_id,
        processes.experiment,
        processes.payload_file,
        processes.concurrency,
        count(distinct processes.host || ':' || cast(processes.pid as {{ string_type() }})) as count_client_processes,
        cast(sum(processes.count_samples) as bigint) as count_client_samples,
        round(max(processes.cpu_mean_percent), 9) as client_cpu_mean_percent,
        max(processes.cpu_max_percent) as client_cpu_max_percent,
        round(max(processes.loop_lag_p95_ms), 9) as client_loop_lag_p95_ms,
        max(processes.loop_lag_max_ms) as client_loop_lag_max_ms,
        round(max(sent.concurrency_sent_mean), 9) as concurrency_sent_mean
    from processes
    inner join sent
        on
            processes.run_id = sent.run_id
            and processes.experiment = sent.experiment
            and processes.payload_file = sent.payload_file
            and processes.concurrency = sent.concurrency
    group by processes.run_id, processes.experiment, processes.payload_file, processes.concurrency
),

-- The rule (docs block client_saturation): CPU first, then event-loop lag.
checked as (
    select
        *,
        client_cpu_mean_percent >= 100 * {{ var('client_saturated_cpu_share') }} as is_cpu_saturated,
        client_loop_lag_p95_ms >= {{ var('client_saturated_loop_lag_ms') }} as is_loop_lag_saturated
    from cells
),

final as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        count_client_processes,
        count_client_samples,
        client_cpu_mean_percent,
        client_cpu_max_percent,
        client_loop_lag_p95_ms,
        client_loop_lag_max_ms,
        concurrency_sent_mean,
        is_cpu_saturated or is_loop_lag_saturated as is_client_saturated,
        case
            when is_cpu_saturated then 'cpu'
            when is_loop_lag_saturated then 'loop_lag'
        end as client_saturation_reason
    from checked
)

select * from final
