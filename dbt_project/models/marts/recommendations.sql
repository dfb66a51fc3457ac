-- One row per cell of the dataset of interest: the budgets it meets or breaks and its rank.
-- The rule is in the model's description (docs block best_option_rule).
with cells as (
    select * from {{ ref('cells') }}
    where is_dataset_of_interest
),

runs as (
    select * from {{ ref('int_runs_merged') }}
),

accuracy as (
    select * from {{ ref('accuracy') }}
),

checked as (
    select
        cells.run_id,
        cells.experiment,
        cells.payload_file,
        cells.concurrency,
        cells.instance_type,
        cells.instance_count,
        cells.count_requests,
        cells.error_rate,
        cells.e2e_latency_p95_ms,
        cells.cost_per_10k_txn_usd,
        cells.transactions_per_minute,
        cells.price_status,
        cells.is_cut_short,
        cells.is_client_saturated,
        cells.client_saturation_reason,
        runs.latency_budget_s,
        runs.cost_per_10k_txn_budget_usd,
        runs.error_rate_budget,
        accuracy.accuracy,
        runs.accuracy_budget,
        accuracy.accuracy is null as is_accuracy_unknown,
        coalesce(runs.selection_rule, 'cheapest') as selection_rule,
        coalesce(runs.min_requests_for_best, {{ var('min_requests_for_best') }}) as min_requests_for_best,
        case
            when runs.latency_budget_s is null then true
            else coalesce(cells.e2e_latency_p95_ms <= 1000 * runs.latency_budget_s, false)
        end as meets_latency_budget,
        case
            when runs.cost_per_10k_txn_budget_usd is null then true
            else coalesce(cells.cost_per_10k_txn_usd <= runs.cost_per_10k_txn_budget_usd, false)
        end as meets_cost_budget,
        case
            when runs.error_rate_budget is null then true
            else cells.error_rate <= runs.error_rate_budget
        end as meets_error_rate_budget,
        -- A cell without an accuracy figure cannot show that it meets an accuracy budget.
        case
            when runs.accuracy_budget is null then true
            else coalesce(accuracy.accuracy >= runs.accuracy_budget, false)
        end as meets_accuracy_budget
    from cells
    inner join runs on cells.run_id = runs.run_id
    left join accuracy
        on
            cells.run_id = accuracy.run_id
            and cells.experiment = accuracy.experiment
            and cells.payload_file = accuracy.payload_file
            and cells.concurrency = accuracy.concurrency
),

scored as (
    select
        *,
        meets_latency_budget and meets_cost_budget and meets_error_rate_budget and meets_accuracy_budget
            as is_feasible,
        -- A cut-short cell measured fewer requests than planned, a small one too few to trust, and
        -- one whose client was saturated measured the client: never a best option or a near miss.
        -- A cell without client telemetry (is_client_saturated null) stays eligible.
        count_requests < min_requests_for_best as is_below_min_requests,
        not is_cut_short and count_requests >= min_requests_for_best and not coalesce(is_client_saturated, false)
            as is_eligible,
        case
            when is_cut_short then 'cut_short'
            when count_requests < min_requests_for_best then 'few_requests'
            when is_client_saturated then 'client_saturated'
        end as ineligible_reason,
        (case when meets_latency_budget then 0 else 1 end)
        + (case when meets_cost_budget then 0 else 1 end)
        + (case when meets_error_rate_budget then 0 else 1 end)
        + (case when meets_accuracy_budget then 0 else 1 end) as count_budgets_broken,
        trim(
            (case when meets_latency_budget then '' else 'latency ' end)
            || (case when meets_cost_budget then '' else 'cost ' end)
            || (case when meets_error_rate_budget then '' else 'error_rate ' end)
            || (case when meets_accuracy_budget then '' else 'accuracy' end)
        ) as budgets_broken,
        (case
            when meets_latency_budget then 0
            else coalesce(e2e_latency_p95_ms / (1000 * latency_budget_s) - 1, 1)
        end)
        + (case
            when meets_cost_budget then 0
            else coalesce(cost_per_10k_txn_usd / nullif(cost_per_10k_txn_budget_usd, 0) - 1, 1)
        end)
        + (case when meets_error_rate_budget then 0 else error_rate - error_rate_budget end)
        + (case when meets_accuracy_budget then 0 else coalesce(accuracy_budget - accuracy, 1) end) as budget_excess
    from checked
),

ranked as (
    select
        *,
        -- report.selection: cheapest ranks by cost first; fmbench by the highest concurrency first.
        -- (NULLs placed explicitly: engines differ in where they put them by default.)
        case when is_eligible and is_feasible then cast(row_number() over (
            partition by run_id, is_eligible and is_feasible
            order by
                case when selection_rule = 'fmbench' then -concurrency else 0 end asc,
                case when cost_per_10k_txn_usd is null then 1 else 0 end asc, cost_per_10k_txn_usd asc,
                transactions_per_minute desc nulls last, e2e_latency_p95_ms asc nulls last, experiment asc, concurrency asc,
                payload_file asc
        ) as bigint) end as feasible_rank,
        case when is_eligible and is_feasible then cast(row_number() over (
            partition by run_id, is_eligible and is_feasible, instance_type
            order by
                case when selection_rule = 'fmbench' then -concurrency else 0 end asc,
                case when cost_per_10k_txn_usd is null then 1 else 0 end asc, cost_per_10k_txn_usd asc,
                transactions_per_minute desc nulls last, e2e_latency_p95_ms asc nulls last, experiment asc, concurrency asc,
                payload_file asc
        ) as bigint) end as instance_type_rank,
        case when is_eligible and not is_feasible then cast(row_number() over (
            partition by run_id, is_eligible and not is_feasible
            order by count_budgets_broken, budget_excess nulls last, experiment, concurrency, payload_file
        ) as bigint) end as miss_rank,
        case when is_eligible and not is_feasible then cast(row_number() over (
            partition by run_id, is_eligible and not is_feasible, instance_type
            order by count_budgets_broken, budget_excess nulls last, experiment, concurrency, payload_file
        ) as bigint) end as instance_type_miss_rank,
        max(case when is_eligible and is_feasible then 1 else 0 end) over (partition by run_id) = 1
            as run_has_feasible_cell,
        max(case when is_eligible and is_feasible then 1 else 0 end) over (partition by run_id, instance_type) = 1
            as instance_type_has_feasible_cell
    from scored
),

final as (
    select
        *,
        coalesce(feasible_rank = 1, false) as is_best_overall,
        coalesce(instance_type_rank = 1, false) as is_best_for_instance_type,
        coalesce(not run_has_feasible_cell and miss_rank <= {{ var('nearest_misses') }}, false) as is_nearest_miss,
        coalesce(not instance_type_has_feasible_cell and instance_type_miss_rank = 1, false)
            as is_nearest_miss_for_instance_type
    from ranked
)

select * from final
