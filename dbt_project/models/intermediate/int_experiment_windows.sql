-- One row per run and experiment: the time from the first start to the last end of its requests,
-- warm-ups and cut-off requests included (the time its endpoint was busy with fmb), and what
-- fmb measured of the finished ones.
with requests as (
    select * from {{ ref('int_requests_classified') }}
),

final as (
    select
        run_id,
        experiment,
        min(started_at) as window_started_at,
        max(ended_at) as window_ended_at,
        count(*) as count_requests,
        cast(sum(case when is_measured then 1 else 0 end) as bigint) as count_finished_requests,
        {{ stable_avg('case when is_measured then e2e_latency_ms end') }} as e2e_latency_mean_ms
    from requests
    group by run_id, experiment
)

select * from final
