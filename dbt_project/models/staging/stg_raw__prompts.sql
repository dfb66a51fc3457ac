with source as (
    select * from {{ source('raw', 'prompts') }}
),

final as (
    select
        cast(benchmark as varchar) as benchmark,
        cast(payload_file as varchar) as payload_file,
        cast(prompt_id as varchar) as prompt_id,
        cast(source_file as varchar) as source_file,
        cast(record_id as varchar) as record_id,
        cast(language as varchar) as language,
        cast(prompt_tokens as integer) as prompt_tokens,
        cast(token_counter as varchar) as token_counter,
        cast(prompt_chars as integer) as prompt_chars,
        cast(filter_min_tokens as integer) as filter_min_tokens,
        cast(filter_max_tokens as integer) as filter_max_tokens,
        cast(prepared_at as timestamp with time zone) as prepared_at
    from source
)

select * from final
