-- One row per experiment of a run: the price it is charged at, matched by its instance type
-- (or model id, for token pricing) in the run's own pricing snapshot. An exact key wins;
-- otherwise a Bedrock cross-region inference profile id (`us.meta...`) and its on-demand
-- model id (`meta...`) stand for each other, since they cost the same.
with experiments as (
    select * from {{ ref('stg_raw__experiments') }}
),

prices as (
    select * from {{ ref('int_prices_chosen') }}
),

candidates as (
    select
        experiments.run_id,
        experiments.experiment,
        prices.price_key,
        prices.pricing_type,
        prices.price_per_hour_usd,
        prices.input_per_1k_tokens_usd,
        prices.output_per_1k_tokens_usd,
        row_number() over (
            partition by experiments.run_id, experiments.experiment
            order by
                case when prices.price_key = experiments.instance_type then 0 else 1 end,
                case when prices.pricing_type = 'instance' then 0 else 1 end,
                prices.price_key
        ) as preference
    from experiments
    inner join prices
        on
            experiments.run_id = prices.run_id
            and {{ base_model('experiments.instance_type') }} = {{ base_model('prices.price_key') }}
),

final as (
    select
        experiments.*,
        candidates.price_key,
        candidates.pricing_type,
        candidates.price_per_hour_usd,
        candidates.input_per_1k_tokens_usd,
        candidates.output_per_1k_tokens_usd
    from experiments
    left join candidates
        on
            experiments.run_id = candidates.run_id
            and experiments.experiment = candidates.experiment
            and candidates.preference = 1
)

select * from final
