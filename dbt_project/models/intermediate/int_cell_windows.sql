{{ config(materialized='table') }}
-- One row per cell and collection session: the measured window of the session, from the first
-- start to the last end of the cell's measured requests (as in int_cells_aggregated; null when the
-- session measured none), and the whole window and counts of all its requests, warm-ups and
-- cut-off ones included. A table: the one scan of the request rows the telemetry models need.
with requests as (
    select * from {{ ref('int_requests_classified') }}
),

final as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        collection_session,
        min(case when is_measured and not is_warmup then started_at end) as window_started_at,
        max(case when is_measured and not is_warmup then ended_at end) as window_ended_at,
        min(started_at) as first_started_at,
        max(ended_at) as last_ended_at,
        count(*) as count_requests,
        cast(sum(case when is_measured then 1 else 0 end) as bigint) as count_finished_requests,
        sum(case when is_measured then e2e_latency_ms end) as finished_e2e_latency_sum_ms,
        count(case when is_measured then e2e_latency_ms end) as count_finished_latencies
    from requests
    group by run_id, experiment, payload_file, concurrency, collection_session
)

select * from final
