-- One row per run and price key: the price a run charges for that key. When pricing.yml has
-- both an instance price and a token price for the same key, the instance price wins, as in FMBench.
with pricing as (
    select * from {{ ref('stg_raw__pricing') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by run_id, price_key
            order by case when pricing_type = 'instance' then 0 else 1 end
        ) as preference
    from pricing
),

final as (
    select
        run_id,
        price_key,
        pricing_type,
        price_per_hour_usd,
        input_per_1k_tokens_usd,
        output_per_1k_tokens_usd
    from ranked
    where preference = 1
)

select * from final
