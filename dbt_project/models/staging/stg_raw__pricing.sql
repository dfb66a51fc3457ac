with source as (
    select * from {{ source('raw', 'pricing') }}
),

final as (
    select
        cast(run_id as {{ string_type() }}) as run_id,
        cast(pricing_type as {{ string_type() }}) as pricing_type,
        cast(price_key as {{ string_type() }}) as price_key,
        cast(price_per_hour_usd as double) as price_per_hour_usd,
        cast(input_per_1k_tokens_usd as double) as input_per_1k_tokens_usd,
        cast(output_per_1k_tokens_usd as double) as output_per_1k_tokens_usd,
        cast(source as {{ string_type() }}) as pricing_file
    from source
)

select * from final
