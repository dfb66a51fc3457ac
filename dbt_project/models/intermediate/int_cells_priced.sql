-- One row per cell: its price from the run's own pricing snapshot, and the costs derived from it.
with cells as (
    select * from {{ ref('int_cells_aggregated') }}
),

experiments as (
    select * from {{ ref('int_experiments_priced') }}
),

runs as (
    select * from {{ ref('int_runs_merged') }}
),

joined as (
    select
        cells.*,
        experiments.instance_type,
        experiments.price_key,
        experiments.instance_count,
        runs.txn_count_for_showing_cost,
        experiments.pricing_type,
        experiments.price_per_hour_usd,
        experiments.input_per_1k_tokens_usd,
        experiments.output_per_1k_tokens_usd
    from cells
    left join experiments
        on cells.run_id = experiments.run_id and cells.experiment = experiments.experiment
    left join runs
        on cells.run_id = runs.run_id
),

costed as (
    select
        *,
        {{ cost_usd(
            'pricing_type', 'price_per_hour_usd', 'instance_count',
            'input_per_1k_tokens_usd', 'output_per_1k_tokens_usd',
            'window_s', 'prompt_tokens_total', 'completion_tokens_total'
        ) }} as cell_cost_usd
    from joined
),

final as (
    select
        *,
        pricing_type is not null as is_priced,
        case
            when instance_type is null then 'no_instance_type'
            when pricing_type is null then 'no_price_for_instance_type'
            when count_successful_requests = 0 then 'no_successful_requests'
            else 'priced'
        end as price_status,
        cell_cost_usd / nullif(count_successful_requests, 0) as price_per_txn_usd,
        10000 * cell_cost_usd / nullif(count_successful_requests, 0) as cost_per_10k_txn_usd,
        txn_count_for_showing_cost * cell_cost_usd / nullif(count_successful_requests, 0) as cost_for_txn_count_usd,
        1000000 * cell_cost_usd / nullif(completion_tokens_total, 0) as cost_per_1m_output_tokens_usd
    from costed
)

select * from final
