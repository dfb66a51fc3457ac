-- One row per run, experiment and time bucket (var timeline_bucket_s) from the experiment's first
-- request to its last end that holds a request start or end or a telemetry sample: what fmb sent
-- and measured, and what the server, the host and the client reported meanwhile.
{%- set bucket_s = var('timeline_bucket_s') %}

with experiments as (
    select * from {{ ref('int_experiment_windows') }}
),

requests as (
    select * from {{ ref('int_requests_classified') }}
),

server_states as (
    select * from {{ ref('int_server_states') }}
),

host_samples as (
    select * from {{ ref('stg_raw__host_metrics') }}
    where metric in ('gpu_utilization_percent', 'cpu_percent')
),

client_samples as (
    select * from {{ ref('stg_raw__client_metrics') }}
),

-- A request counts as started in the bucket of its start, as completed (when successful) in
-- that of its end: each request read once, then one row for its start and one for its end.
request_times as (
    select
        requests.run_id,
        requests.experiment,
        floor({{ duration_s('experiments.window_started_at', 'requests.started_at') }} / {{ bucket_s }})
            as start_bucket_index,
        floor({{ duration_s('experiments.window_started_at', 'requests.ended_at') }} / {{ bucket_s }})
            as end_bucket_index,
        requests.is_success,
        requests.completion_tokens
    from requests
    inner join experiments on requests.run_id = experiments.run_id and requests.experiment = experiments.experiment
),

request_edges as (
    select 'start' as edge
    union all
    select 'end' as edge
),

request_events as (
    select
        request_times.run_id,
        request_times.experiment,
        case
            when request_edges.edge = 'start' then request_times.start_bucket_index
            else request_times.end_bucket_index
        end as bucket_index,
        case when request_edges.edge = 'start' then 1 else 0 end as started,
        case when request_edges.edge = 'end' and request_times.is_success then 1 else 0 end as completed,
        case
            when request_edges.edge = 'end' and request_times.is_success then request_times.completion_tokens
        end as completion_tokens
    from request_times
    cross join request_edges
),

request_buckets as (
    select
        run_id,
        experiment,
        bucket_index,
        cast(sum(started) as bigint) as requests_started,
        cast(sum(completed) as bigint) as requests_completed,
        sum(completion_tokens) as completion_tokens
    from request_events
    group by run_id, experiment, bucket_index
),

-- Each sample in the bucket of its time, counted from the start of its experiment.
server_in_buckets as (
    select
        server_states.*,
        floor({{ duration_s('experiments.window_started_at', 'server_states.scraped_at') }} / {{ bucket_s }})
            as bucket_index
    from server_states
    inner join experiments
        on
            server_states.run_id = experiments.run_id
            and server_states.experiment = experiments.experiment
            and server_states.scraped_at between experiments.window_started_at and experiments.window_ended_at
),

server_buckets as (
    select
        run_id,
        experiment,
        bucket_index,
        {{ stable_avg('requests_waiting') }} as server_requests_waiting_mean,
        {{ stable_avg('requests_running') }} as server_requests_running_mean,
        {{ stable_avg('kv_cache_usage_ratio') }} as kv_cache_usage_mean_ratio,
        {{ stable_avg('output_tokens_per_s') }} as server_output_tokens_per_s
    from server_in_buckets
    group by run_id, experiment, bucket_index
),

host_in_buckets as (
    select
        experiments.experiment,
        host_samples.*,
        floor({{ duration_s('experiments.window_started_at', 'host_samples.sampled_at') }} / {{ bucket_s }})
            as bucket_index
    from host_samples
    inner join experiments
        on
            host_samples.run_id = experiments.run_id
            and host_samples.sampled_at between experiments.window_started_at and experiments.window_ended_at
),

host_buckets as (
    select
        run_id,
        experiment,
        bucket_index,
        {{ stable_avg("case when metric = 'gpu_utilization_percent' then value end") }}
            as gpu_utilization_mean_percent,
        {{ stable_avg("case when metric = 'cpu_percent' then value end") }} as host_cpu_mean_percent
    from host_in_buckets
    group by run_id, experiment, bucket_index
),

client_in_buckets as (
    select
        experiments.experiment,
        client_samples.*,
        floor({{ duration_s('experiments.window_started_at', 'client_samples.sampled_at') }} / {{ bucket_s }})
            as bucket_index
    from client_samples
    inner join experiments
        on
            client_samples.run_id = experiments.run_id
            and client_samples.sampled_at between experiments.window_started_at and experiments.window_ended_at
),

-- Each collector process on its own first: requests in flight add up over the processes, the
-- busiest process's CPU is the client's.
client_process_buckets as (
    select
        run_id,
        experiment,
        bucket_index,
        host,
        pid,
        avg(in_flight) as in_flight_mean,
        avg(cpu_percent) as cpu_mean_percent
    from client_in_buckets
    group by run_id, experiment, bucket_index, host, pid
),

client_buckets as (
    select
        run_id,
        experiment,
        bucket_index,
        round(sum(in_flight_mean), 9) as requests_in_flight_mean,
        round(max(cpu_mean_percent), 9) as client_cpu_percent
    from client_process_buckets
    group by run_id, experiment, bucket_index
),

buckets as (
    select
        run_id,
        experiment,
        bucket_index
    from request_buckets
    union
    select
        run_id,
        experiment,
        bucket_index
    from server_buckets
    union
    select
        run_id,
        experiment,
        bucket_index
    from host_buckets
    union
    select
        run_id,
        experiment,
        bucket_index
    from client_buckets
),

timed as (
    select
        buckets.run_id,
        buckets.experiment,
        buckets.bucket_index,
        {{ shift_timestamp('microsecond', 'buckets.bucket_index * ' ~ (bucket_s * 1000000) | int, 'experiments.window_started_at') }}
            as bucket_started_at,
        {{ shift_timestamp('microsecond', '(buckets.bucket_index + 1) * ' ~ (bucket_s * 1000000) | int, 'experiments.window_started_at') }}
            as bucket_ended_at
    from buckets
    inner join experiments on buckets.run_id = experiments.run_id and buckets.experiment = experiments.experiment
),

-- The cells' windows, warm-ups included, one per collection session.
cell_windows as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        first_started_at as cell_started_at,
        last_ended_at as cell_ended_at
    from {{ ref('int_cell_windows') }}
),

-- The cell active in the bucket: of the cells whose window overlaps it, the one started last.
active_cells as (
    select
        timed.run_id,
        timed.experiment,
        timed.bucket_index,
        cell_windows.payload_file,
        cell_windows.concurrency,
        row_number() over (
            partition by timed.run_id, timed.experiment, timed.bucket_index
            order by cell_windows.cell_started_at desc, cell_windows.payload_file asc, cell_windows.concurrency asc
        ) as cell_rank
    from timed
    inner join cell_windows
        on
            timed.run_id = cell_windows.run_id
            and timed.experiment = cell_windows.experiment
            and timed.bucket_ended_at > cell_windows.cell_started_at
            and timed.bucket_started_at <= cell_windows.cell_ended_at
),

final as (
    select
        timed.run_id,
        timed.experiment,
        timed.bucket_started_at,
        cast(timed.bucket_index * {{ bucket_s }} as double) as seconds_since_start,
        active_cells.payload_file,
        active_cells.concurrency,
        client_buckets.requests_in_flight_mean,
        cast(coalesce(request_buckets.requests_started, 0) as bigint) as requests_started,
        cast(coalesce(request_buckets.requests_completed, 0) as bigint) as requests_completed,
        cast(coalesce(request_buckets.completion_tokens, 0) as double) / {{ bucket_s }} as output_tokens_per_s,
        server_buckets.server_requests_waiting_mean,
        server_buckets.server_requests_running_mean,
        server_buckets.kv_cache_usage_mean_ratio,
        server_buckets.server_output_tokens_per_s,
        host_buckets.gpu_utilization_mean_percent,
        host_buckets.host_cpu_mean_percent,
        client_buckets.client_cpu_percent
    from timed
    left join active_cells
        on
            timed.run_id = active_cells.run_id
            and timed.experiment = active_cells.experiment
            and timed.bucket_index = active_cells.bucket_index
            and active_cells.cell_rank = 1
    left join request_buckets
        on
            timed.run_id = request_buckets.run_id
            and timed.experiment = request_buckets.experiment
            and timed.bucket_index = request_buckets.bucket_index
    left join server_buckets
        on
            timed.run_id = server_buckets.run_id
            and timed.experiment = server_buckets.experiment
            and timed.bucket_index = server_buckets.bucket_index
    left join host_buckets
        on
            timed.run_id = host_buckets.run_id
            and timed.experiment = host_buckets.experiment
            and timed.bucket_index = host_buckets.bucket_index
    left join client_buckets
        on
            timed.run_id = client_buckets.run_id
            and timed.experiment = client_buckets.experiment
            and timed.bucket_index = client_buckets.bucket_index
)

select * from final
