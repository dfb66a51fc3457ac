-- One row per run and experiment: the time from the first start to the last end of its requests,
-- warm-ups and cut-off requests included (the time its endpoint served fmb), and what fmb
-- measured of the finished ones (not cancelled).
with cell_windows as (
    select * from {{ ref('int_cell_windows') }}
),

final as (
    select
        run_id,
        experiment,
        min(first_started_at) as window_started_at,
        max(last_ended_at) as window_ended_at,
        cast(sum(count_requests) as bigint) as count_requests,
        cast(sum(count_finished_requests) as bigint) as count_finished_requests,
        round(sum(finished_e2e_latency_sum_ms) / nullif(sum(count_finished_latencies), 0), 9) as e2e_latency_mean_ms
    from cell_windows
    group by run_id, experiment
)

select * from final
