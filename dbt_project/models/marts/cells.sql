-- One row per cell (run x experiment x payload file x concurrency): what it measured and what it cost.
with priced as (
    select * from {{ ref('int_cells_priced') }}
),

experiments as (
    select * from {{ ref('stg_raw__experiments') }}
),

runs as (
    select * from {{ ref('int_runs_merged') }}
),

planned as (
    select * from {{ ref('stg_raw__cells') }}
),

telemetry as (
    select * from {{ ref('int_cells_telemetry_joined') }}
),

final as (
    select
        priced.run_id,
        runs.benchmark,
        runs.started_at as run_started_at,
        priced.experiment,
        priced.payload_file,
        priced.concurrency,
        experiments.backend,
        experiments.model_id,
        experiments.model_name,
        priced.instance_type,
        priced.instance_count,
        experiments.is_streamed,
        runs.dataset_of_interest is null
        or {{ dbt.position('runs.dataset_of_interest', 'priced.payload_file') }} > 0 as is_dataset_of_interest,
        priced.count_requests,
        priced.count_successful_requests,
        priced.count_failed_requests,
        priced.count_timed_out_requests,
        priced.count_throttled_requests,
        planned.planned_requests as count_planned_requests,
        planned.planned_requests - priced.count_requests as count_missing_requests,
        coalesce(priced.count_requests < planned.planned_requests, false) as is_cut_short,
        -- Percentiles are over successful requests: from only a few of them they are rough.
        priced.count_successful_requests < {{ var('min_requests_for_percentile') }} as is_percentile_from_few_requests,
        priced.count_successful_requests < {{ var('min_requests_for_p99') }} as is_p99_from_few_requests,
        priced.error_rate,
        priced.e2e_latency_mean_ms,
        priced.e2e_latency_p50_ms,
        priced.e2e_latency_p90_ms,
        priced.e2e_latency_p95_ms,
        priced.e2e_latency_p99_ms,
        priced.e2e_latency_max_ms,
        priced.ttft_mean_ms,
        priced.ttft_p50_ms,
        priced.ttft_p90_ms,
        priced.ttft_p95_ms,
        priced.ttft_p99_ms,
        priced.ttft_max_ms,
        priced.ttlt_mean_ms,
        priced.ttlt_p50_ms,
        priced.ttlt_p90_ms,
        priced.ttlt_p95_ms,
        priced.ttlt_p99_ms,
        priced.ttlt_max_ms,
        priced.tpot_mean_ms,
        priced.tpot_p50_ms,
        priced.tpot_p90_ms,
        priced.tpot_p95_ms,
        priced.tpot_p99_ms,
        priced.tpot_max_ms,
        priced.prompt_tokens_mean,
        priced.completion_tokens_mean,
        priced.prompt_tokens_total,
        priced.completion_tokens_total,
        priced.token_count_source,
        priced.server_token_count_share,
        priced.prompt_token_mismatch_rate,
        priced.completion_token_mismatch_rate,
        priced.window_started_at,
        priced.window_ended_at,
        priced.window_s,
        priced.count_collection_sessions,
        priced.requests_per_s,
        priced.transactions_per_minute,
        priced.input_tokens_per_s,
        priced.output_tokens_per_s,
        priced.is_priced,
        priced.price_status,
        priced.pricing_type,
        priced.price_per_hour_usd,
        priced.input_per_1k_tokens_usd,
        priced.output_per_1k_tokens_usd,
        priced.cell_cost_usd,
        priced.price_per_txn_usd,
        priced.cost_per_10k_txn_usd,
        priced.txn_count_for_showing_cost,
        priced.cost_for_txn_count_usd,
        priced.cost_per_1m_output_tokens_usd,
        telemetry.is_client_saturated,
        telemetry.client_saturation_reason,
        telemetry.gpu_utilization_mean_percent,
        telemetry.host_cpu_mean_percent,
        telemetry.requests_waiting_mean as server_requests_waiting_mean,
        experiments.config_experiment,
        experiments.load_mode,
        experiments.request_rate_per_s,
        experiments.burstiness,
        experiments.trace_speedup,
        experiments.lateness_threshold_ms,
        priced.send_lateness_p50_ms,
        priced.send_lateness_p99_ms,
        priced.send_lateness_max_ms,
        coalesce(priced.send_lateness_p99_ms > experiments.lateness_threshold_ms, false) as is_behind_schedule,
        priced.e2e_latency_from_schedule_p50_ms,
        priced.e2e_latency_from_schedule_p99_ms,
        priced.ttft_from_schedule_p50_ms,
        priced.ttft_from_schedule_p99_ms,
        priced.e2e_latency_error_adjusted_p50_ms,
        priced.e2e_latency_error_adjusted_p99_ms,
        priced.ttft_error_adjusted_p50_ms,
        priced.ttft_error_adjusted_p99_ms,
        experiments.slo_ttft_ms,
        experiments.slo_tpot_ms,
        experiments.slo_e2e_latency_ms,
        priced.count_requests_within_slo,
        priced.slo_attainment,
        priced.goodput_requests_per_s,
        priced.goodput_output_tokens_per_s,
        1000000 * priced.cell_cost_usd / nullif(priced.completion_tokens_within_slo, 0)
            as cost_per_1m_output_tokens_within_slo_usd,
        {{ percentile_method() }} as percentile_method
    from priced
    left join experiments
        on priced.run_id = experiments.run_id and priced.experiment = experiments.experiment
    left join runs
        on priced.run_id = runs.run_id
    left join planned
        on
            priced.run_id = planned.run_id
            and priced.experiment = planned.experiment
            and priced.payload_file = planned.payload_file
            and priced.concurrency = planned.concurrency
    left join telemetry
        on
            priced.run_id = telemetry.run_id
            and priced.experiment = telemetry.experiment
            and priced.payload_file = telemetry.payload_file
            and priced.concurrency = telemetry.concurrency
)

select * from final
