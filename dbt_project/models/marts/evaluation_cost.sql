-- One row per run and judge of its evaluation: the judge's calls, tokens and what they cost at
-- the judge model's token price in the run's pricing snapshot (docs block evaluation_cost).
with calls as (
    select * from {{ ref('int_evaluation_verdicts') }}
),

token_prices as (
    select * from {{ ref('stg_raw__pricing') }}
    where pricing_type = 'token'
),

judges as (
    select
        run_id,
        evaluation_id,
        judge,
        max(judge_backend) as judge_backend,
        count(*) as count_judge_calls,
        cast(sum(case when is_answered then 0 else 1 end) as bigint) as count_failed_calls,
        cast(sum(case when prompt_tokens is null and completion_tokens is null then 1 else 0 end) as bigint)
            as count_calls_without_tokens,
        cast(sum(attempts) as bigint) as count_attempts,
        cast(sum(prompt_tokens) as bigint) as prompt_tokens_total,
        cast(sum(completion_tokens) as bigint) as completion_tokens_total,
        {{ stable_avg('latency_ms') }} as latency_mean_ms,
        {{ percentile('latency_ms', 0.5) }} as latency_p50_ms,
        {{ percentile('latency_ms', 0.95) }} as latency_p95_ms
    from calls
    group by run_id, evaluation_id, judge
),

candidates as (
    select
        judges.run_id,
        judges.judge,
        token_prices.price_key,
        token_prices.input_per_1k_tokens_usd,
        token_prices.output_per_1k_tokens_usd,
        row_number() over (
            partition by judges.run_id, judges.judge
            order by case when token_prices.price_key = judges.judge then 0 else 1 end, token_prices.price_key
        ) as preference
    from judges
    inner join token_prices
        on
            judges.run_id = token_prices.run_id
            and {{ base_model('judges.judge') }} = {{ base_model('token_prices.price_key') }}
),

final as (
    select
        judges.run_id,
        judges.evaluation_id,
        judges.judge,
        judges.judge_backend,
        judges.count_judge_calls,
        judges.count_failed_calls,
        judges.count_calls_without_tokens,
        judges.count_attempts,
        coalesce(judges.prompt_tokens_total, 0) as prompt_tokens_total,
        coalesce(judges.completion_tokens_total, 0) as completion_tokens_total,
        judges.latency_mean_ms,
        judges.latency_p50_ms,
        judges.latency_p95_ms,
        candidates.price_key,
        candidates.input_per_1k_tokens_usd,
        candidates.output_per_1k_tokens_usd,
        candidates.price_key is not null as is_priced,
        case when candidates.price_key is null then 'no_price_for_judge' else 'priced' end as price_status,
        round(
            {{ cost_usd(
                "case when candidates.price_key is not null then 'token' end",
                'null', 'null',
                'candidates.input_per_1k_tokens_usd', 'candidates.output_per_1k_tokens_usd',
                'null', 'judges.prompt_tokens_total', 'judges.completion_tokens_total'
            ) }},
            9
        ) as evaluation_cost_usd,
        round(
            {{ cost_usd(
                "case when candidates.price_key is not null then 'token' end",
                'null', 'null',
                'candidates.input_per_1k_tokens_usd', 'candidates.output_per_1k_tokens_usd',
                'null', 'judges.prompt_tokens_total', 'judges.completion_tokens_total'
            ) }} / judges.count_judge_calls,
            12
        ) as cost_per_judge_call_usd,
        {{ percentile_method() }} as percentile_method
    from judges
    left join candidates
        on
            judges.run_id = candidates.run_id
            and judges.judge = candidates.judge
            and candidates.preference = 1
)

select * from final
