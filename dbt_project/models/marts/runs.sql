-- One row per run: the config it ran, how it ended, how much it sent and what it cost.
with runs as (
    select
        *,
        client_process_cpu_s / nullif({{ duration_s('started_at', 'ended_at') }}, 0) as client_process_cpu_share
    from {{ ref('int_runs_merged') }}
),

experiment_runs as (
    select * from {{ ref('experiment_runs') }}
),

-- The cells a sweep left out past its knee were never to be sent: they are not missing.
planned as (
    select * from {{ ref('stg_raw__cells') }}
    where skip_reason is null
),

cells as (
    select * from {{ ref('cells') }}
),

evaluations as (
    select * from {{ ref('int_evaluation_runs_chosen') }}
),

evaluation_counts as (
    select
        run_id,
        count(*) as count_evaluations
    from {{ ref('stg_raw__evaluation_runs') }}
    group by run_id
),

-- Planned cells against what they measured; a planned cell that never started has no row in cells.
completeness as (
    select
        planned.run_id,
        count(*) as count_planned_cells,
        cast(sum(planned.planned_requests) as bigint) as count_planned_requests,
        cast(sum(planned.planned_requests - coalesce(cells.count_requests, 0)) as bigint) as count_missing_requests,
        cast(sum(case when coalesce(cells.count_requests, 0) < planned.planned_requests then 1 else 0 end) as bigint)
            as count_cut_short_cells
    from planned
    left join cells
        on
            planned.run_id = cells.run_id
            and planned.experiment = cells.experiment
            and planned.payload_file = cells.payload_file
            and planned.concurrency = cells.concurrency
    group by planned.run_id
),

-- The measured requests (not warm-ups, not cut off), as the cells count them.
measured as (
    select
        run_id,
        cast(sum(count_requests) as bigint) as count_measured_requests,
        cast(sum(count_successful_requests) as bigint) as count_measured_successful_requests,
        cast(sum(count_failed_requests) as bigint) as count_measured_failed_requests
    from cells
    group by run_id
),

totals as (
    select
        run_id,
        count(*) as count_experiments,
        cast(sum(count_requests_sent) as bigint) as count_requests_sent,
        cast(sum(count_warmup_requests) as bigint) as count_warmup_requests,
        cast(sum(count_successful_requests) as bigint) as count_successful_requests,
        cast(sum(count_failed_requests) as bigint) as count_failed_requests,
        {{ stable_sum("experiment_cost_usd") }} as priced_cost_usd,
        cast(sum(case when is_priced then 0 else 1 end) as bigint) as count_unpriced_experiments
    from experiment_runs
    group by run_id
),

final as (
    select
        runs.run_id,
        runs.benchmark,
        runs.model_name,
        runs.report_title,
        runs.config_path,
        runs.config_hash,
        runs.config_json,
        runs.fmb_version,
        runs.host,
        runs.started_at,
        runs.ended_at,
        runs.run_status,
        runs.run_status_message,
        runs.dataset_of_interest,
        runs.latency_budget_s,
        runs.cost_per_10k_txn_budget_usd,
        runs.error_rate_budget,
        runs.accuracy_budget,
        coalesce(runs.selection_rule, 'cheapest') as selection_rule,
        coalesce(runs.min_requests_for_best, {{ var('min_requests_for_best') }}) as min_requests_for_best,
        runs.txn_count_for_showing_cost,
        runs.run_group,
        runs.repeat_index,
        runs.shard_count,
        runs.collector_count,
        runs.host_count,
        runs.count_missing_shards,
        runs.python_version,
        runs.client_cpu_model,
        runs.client_logical_cores,
        runs.client_memory_bytes,
        runs.client_os,
        runs.client_load_1m_before,
        runs.client_load_1m_after,
        runs.client_process_cpu_s,
        runs.client_process_cpu_share,
        -- Busy: a load average above a share of the cores before or after the run, or the
        -- collector itself near one full core (its event loop then delays the timings it takes).
        case
            when
                runs.client_load_1m_before is null and runs.client_load_1m_after is null
                and runs.client_process_cpu_share is null then null
            else
                coalesce(runs.client_load_1m_before > {{ var('client_busy_load_per_core') }} * runs.client_logical_cores, false)
                or coalesce(runs.client_load_1m_after > {{ var('client_busy_load_per_core') }} * runs.client_logical_cores, false)
                or coalesce(runs.client_process_cpu_share >= {{ var('client_busy_cpu_share') }}, false)
        end as is_client_busy,
        coalesce(totals.count_experiments, 0) as count_experiments,
        coalesce(totals.count_requests_sent, 0) as count_requests_sent,
        coalesce(totals.count_warmup_requests, 0) as count_warmup_requests,
        coalesce(measured.count_measured_requests, 0) as count_measured_requests,
        coalesce(measured.count_measured_successful_requests, 0) as count_measured_successful_requests,
        coalesce(measured.count_measured_failed_requests, 0) as count_measured_failed_requests,
        coalesce(totals.count_requests_sent, 0) - coalesce(totals.count_warmup_requests, 0)
        - coalesce(measured.count_measured_requests, 0) as count_cut_off_requests,
        coalesce(totals.count_successful_requests, 0) as count_successful_requests,
        coalesce(totals.count_failed_requests, 0) as count_failed_requests,
        totals.priced_cost_usd as run_cost_usd,
        coalesce(totals.count_unpriced_experiments, 0) as count_unpriced_experiments,
        completeness.count_planned_cells,
        completeness.count_planned_requests,
        completeness.count_missing_requests,
        completeness.count_cut_short_cells,
        evaluations.evaluation_id,
        evaluations.started_at as evaluation_started_at,
        coalesce(evaluation_counts.count_evaluations, 0) as count_evaluations
    from runs
    left join totals on runs.run_id = totals.run_id
    left join measured on runs.run_id = measured.run_id
    left join completeness on runs.run_id = completeness.run_id
    left join evaluations on runs.run_id = evaluations.run_id
    left join evaluation_counts on runs.run_id = evaluation_counts.run_id
)

select * from final
