{%- set same_cell -%}
    partition by cells.benchmark, cells.experiment, cells.payload_file, cells.concurrency
    order by cells.run_started_at, cells.run_id
{%- endset -%}
{#- The metrics whose change is told from noise, and the name of each flag. -#}
{%- set noise_metrics = {
    'e2e_latency_p95_ms': 'is_e2e_latency_p95_change_noise',
    'ttft_p50_ms': 'is_ttft_p50_change_noise',
    'output_tokens_per_s': 'is_output_tokens_per_s_change_noise',
    'transactions_per_minute': 'is_transactions_per_minute_change_noise',
    'error_rate': 'is_error_rate_change_noise',
} -%}
-- One row per cell with the same cell (benchmark, experiment, payload file, concurrency)
-- of the previous run next to it: whether a change made it faster or cheaper.
with cells as (
    select * from {{ ref('cells') }}
),

runs as (
    select * from {{ ref('int_runs_merged') }}
    where run_status = 'completed'
),

spreads as (
    select * from {{ ref('cell_spreads') }}
),

ordered as (
    select
        cells.benchmark,
        cells.experiment,
        cells.payload_file,
        cells.concurrency,
        cells.run_id,
        cells.run_started_at,
        runs.run_group,
        cells.e2e_latency_p95_ms,
        cells.ttft_p50_ms,
        cells.output_tokens_per_s,
        cells.transactions_per_minute,
        cells.error_rate,
        cells.cost_per_10k_txn_usd,
        lag(cells.run_id) over ({{ same_cell }}) as previous_run_id,
        lag(runs.run_group) over ({{ same_cell }}) as previous_run_group,
        lag(cells.e2e_latency_p95_ms) over ({{ same_cell }}) as previous_e2e_latency_p95_ms,
        lag(cells.ttft_p50_ms) over ({{ same_cell }}) as previous_ttft_p50_ms,
        lag(cells.output_tokens_per_s) over ({{ same_cell }}) as previous_output_tokens_per_s,
        lag(cells.transactions_per_minute) over ({{ same_cell }}) as previous_transactions_per_minute,
        lag(cells.error_rate) over ({{ same_cell }}) as previous_error_rate,
        lag(cells.cost_per_10k_txn_usd) over ({{ same_cell }}) as previous_cost_per_10k_txn_usd,
        cast(row_number() over ({{ same_cell }}) as bigint) as run_number
    from cells
    inner join runs on cells.run_id = runs.run_id
),

changes as (
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
),

-- A change is noise when the new value lies within the previous run group's spread of the
-- cell, or the previous value within the new run's group spread. Unknown (null) when neither
-- group has more than one run: a single run has no spread to compare with.
noise as (
    select
        {%- for metric, flag in noise_metrics.items() %}
            case
                when changes.previous_{{ metric }} is null or changes.{{ metric }} is null then null
                when coalesce(here.count_runs, 1) < 2 and coalesce(there.count_runs, 1) < 2 then null
                else
                    coalesce(changes.{{ metric }} between there.min_{{ metric }} and there.max_{{ metric }}, false)
                    or coalesce(changes.previous_{{ metric }} between here.min_{{ metric }} and here.max_{{ metric }}, false)
            end as {{ flag }},
        {%- endfor %}
        changes.*
    from changes
    left join spreads as here
        on
            changes.run_group = here.run_group
            and changes.experiment = here.experiment
            and changes.payload_file = here.payload_file
            and changes.concurrency = here.concurrency
    left join spreads as there
        on
            changes.previous_run_group = there.run_group
            and changes.experiment = there.experiment
            and changes.payload_file = there.payload_file
            and changes.concurrency = there.concurrency
),

final as (
    select
        *,
        -- Every key metric that has a verdict changed within the noise.
        case
            when {% for flag in noise_metrics.values() %}{{ flag }} is null{{ " and " if not loop.last }}{% endfor %} then null
            else {% for flag in noise_metrics.values() %}coalesce({{ flag }}, true){{ " and " if not loop.last }}{% endfor %}
        end as is_change_noise
    from noise
)

select * from final
