with source as (
    select * from {{ source('raw', 'prompts') }}
),

final as (
    select
        cast(benchmark as {{ string_type() }}) as benchmark,
        cast(payload_file as {{ string_type() }}) as payload_file,
        cast(prompt_id as {{ string_type() }}) as prompt_id,
        cast(source_file as {{ string_type() }}) as source_file,
        cast(record_id as {{ string_type() }}) as record_id,
        cast(language as {{ string_type() }}) as language,
        cast(prompt_tokens as integer) as prompt_tokens,
        cast(token_counter as {{ string_type() }}) as token_counter,
        cast(prompt_chars as integer) as prompt_chars,
        cast(filter_min_tokens as integer) as filter_min_tokens,
        cast(filter_max_tokens as integer) as filter_max_tokens,
        cast(prepared_at as {{ timestamp_tz_type() }}) as prepared_at
    from source
)

select * from final
