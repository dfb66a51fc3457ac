{%- set same_cell -%}
    partition by cells.benchmark, cells.experiment, cells.payload_file, cells.concurrency
    order by cells.run_started_at, cells.run_id
{%- endset -%}
-- One row per cell with the same cell (benchmark, experiment, payload file, concurrency)
-- of the previous run next to it: whether a change made it faster or cheaper.
with cells as (
    select * from {{ ref('cells') }}
),

runs as (
    select * from {{ ref('stg_raw__runs') }}
    where run_status = 'completed'
),

ordered as (
    select
        cells.benchmark,
        cells.experiment,
        cells.payload_file,
        cells.concurrency,
        cells.run_id,
        cells.run_started_at,
        cells.e2e_latency_p95_ms,
        cells.ttft_p50_ms,
        cells.output_tokens_per_s,
        cells.transactions_per_minute,
        cells.error_rate,
        cells.cost_per_10k_txn_usd,
        lag(cells.run_id) over ({{ same_cell }}) as previous_run_id,
        lag(cells.e2e_latency_p95_ms) over ({{ same_cell }}) as previous_e2e_latency_p95_ms,
        lag(cells.ttft_p50_ms) over ({{ same_cell }}) as previous_ttft_p50_ms,
        lag(cells.output_tokens_per_s) over ({{ same_cell }}) as previous_output_tokens_per_s,
        lag(cells.transactions_per_minute) over ({{ same_cell }}) as previous_transactions_per_minute,
        lag(cells.error_rate) over ({{ same_cell }}) as previous_error_rate,
        lag(cells.cost_per_10k_txn_usd) over ({{ same_cell }}) as previous_cost_per_10k_txn_usd,
        row_number() over ({{ same_cell }}) as run_number
    from cells
    inner join runs on cells.run_id = runs.run_id
),

final as (
    select
        *,
        100.0 * (e2e_latency_p95_ms / nullif(previous_e2e_latency_p95_ms, 0) - 1) as e2e_latency_p95_change_pct,
        100.0 * (ttft_p50_ms / nullif(previous_ttft_p50_ms, 0) - 1) as ttft_p50_change_pct,
        100.0 * (output_tokens_per_s / nullif(previous_output_tokens_per_s, 0) - 1) as output_tokens_per_s_change_pct,
        100.0 * (transactions_per_minute / nullif(previous_transactions_per_minute, 0) - 1)
            as transactions_per_minute_change_pct,
        error_rate - previous_error_rate as error_rate_change,
        100.0 * (cost_per_10k_txn_usd / nullif(previous_cost_per_10k_txn_usd, 0) - 1) as cost_per_10k_txn_change_pct
    from ordered
)

select * from final
