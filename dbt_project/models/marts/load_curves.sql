-- One row per load level of a curve (run x experiment as the config names it x payload file
-- x level): throughput and latency as the load rises, and the knee, the highest level worth
-- running at. A level is the concurrency (closed loop, waves) or the offered rate (open loop,
-- trace); the levels of one curve are the cells of one config experiment and payload file.
with cells as (
    select * from {{ ref('cells') }}
),

-- The knee's thresholds: the experiment's (load.knee_min_*), else the build's vars.
thresholds as (
    select
        run_id,
        experiment,
        knee_min_throughput_gain,
        knee_min_slo_attainment
    from {{ ref('stg_raw__experiments') }}
),

levels as (
    select
        cells.run_id,
        cells.config_experiment,
        cells.payload_file,
        cells.experiment,
        cast(coalesce(thresholds.knee_min_throughput_gain, {{ var('knee_min_throughput_gain') }}) as double)
            as knee_min_throughput_gain,
        cast(coalesce(thresholds.knee_min_slo_attainment, {{ var('knee_min_slo_attainment') }}) as double)
            as knee_min_slo_attainment,
        cells.load_mode,
        cells.concurrency,
        case when cells.load_mode in ('closed', 'waves') then 'concurrency' else 'requests_per_s' end as load_unit,
        case
            when cells.load_mode in ('closed', 'waves') then cast(cells.concurrency as double)
            else cells.request_rate_per_s
        end as offered_load,
        cells.count_requests,
        cells.error_rate,
        cells.requests_per_s,
        cells.output_tokens_per_s,
        cells.e2e_latency_p50_ms,
        cells.e2e_latency_p99_ms,
        cells.ttft_p99_ms,
        cells.e2e_latency_from_schedule_p99_ms,
        cells.slo_attainment,
        cells.is_behind_schedule,
        cells.is_client_saturated
    from cells
    left join thresholds
        on cells.run_id = thresholds.run_id and cells.experiment = thresholds.experiment
),

ranked as (
    select
        *,
        cast(row_number() over (
            partition by run_id, config_experiment, payload_file order by offered_load, experiment
        ) as bigint) as level_rank,
        cast(count(*) over (partition by run_id, config_experiment, payload_file) as bigint) as count_levels,
        lag(requests_per_s) over (
            partition by run_id, config_experiment, payload_file order by offered_load, experiment
        ) as previous_requests_per_s
    from levels
),

-- Why a level is past the knee: its throughput grew too little over the level below, it
-- broke the SLO, or its client fell behind (its figures describe less load than offered).
judged as (
    select
        *,
        requests_per_s / nullif(previous_requests_per_s, 0) - 1 as throughput_gain,
        case
            when slo_attainment < knee_min_slo_attainment then 'slo_broken'
            when is_behind_schedule or coalesce(is_client_saturated, false) then 'client_behind'
            when level_rank > 1 and coalesce(
                requests_per_s / nullif(previous_requests_per_s, 0) - 1 < knee_min_throughput_gain,
                true
            ) then 'throughput_flat'
        end as stop_reason
    from ranked
),

prefixed as (
    select
        *,
        sum(case when stop_reason is not null then 1 else 0 end) over (
            partition by run_id, config_experiment, payload_file
            order by level_rank
            rows between unbounded preceding and current row
        ) as count_stops_so_far
    from judged
),

knees as (
    select
        run_id,
        config_experiment,
        payload_file,
        max(case when count_stops_so_far = 0 then level_rank end) as knee_rank,
        min(case when stop_reason is not null then level_rank end) as first_stop_rank
    from prefixed
    group by run_id, config_experiment, payload_file
),

final as (
    select
        prefixed.run_id,
        prefixed.config_experiment,
        prefixed.payload_file,
        prefixed.experiment,
        prefixed.load_mode,
        prefixed.load_unit,
        prefixed.offered_load,
        prefixed.concurrency,
        prefixed.level_rank,
        prefixed.count_levels,
        prefixed.count_requests,
        prefixed.error_rate,
        prefixed.requests_per_s,
        prefixed.output_tokens_per_s,
        prefixed.throughput_gain,
        prefixed.e2e_latency_p50_ms,
        prefixed.e2e_latency_p99_ms,
        prefixed.ttft_p99_ms,
        prefixed.e2e_latency_from_schedule_p99_ms,
        prefixed.slo_attainment,
        prefixed.stop_reason,
        coalesce(prefixed.level_rank = knees.knee_rank, false) as is_knee,
        -- The knee is confirmed by a level above it that stops the curve; without one the curve
        -- had not saturated at its highest level.
        knees.first_stop_rank is not null as is_curve_saturated,
        knees.knee_rank is not null and prefixed.level_rank > knees.knee_rank as is_past_knee,
        prefixed.knee_min_throughput_gain,
        prefixed.knee_min_slo_attainment
    from prefixed
    inner join knees
        on
            prefixed.run_id = knees.run_id
            and prefixed.config_experiment = knees.config_experiment
            and prefixed.payload_file = knees.payload_file
)

select * from final
