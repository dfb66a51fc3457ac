with source as (
    select * from {{ source('raw', 'evaluation_scores') }}
),

final as (
    select
        cast(evaluation_id as {{ string_type() }}) as evaluation_id,
        cast(run_id as {{ string_type() }}) as run_id,
        cast(experiment as {{ string_type() }}) as experiment,
        cast(payload_file as {{ string_type() }}) as payload_file,
        cast(concurrency as integer) as concurrency,
        cast(request_index as bigint) as request_index,
        cast(session as integer) as collection_session,
        cast(prompt_id as {{ string_type() }}) as prompt_id,
        cast(ground_truth as {{ string_type() }}) as ground_truth,
        cast(question as {{ string_type() }}) as question,
        cast(cosine_similarity as double) as cosine_similarity,
        cast(levenshtein_ratio as double) as levenshtein_ratio,
        cast(token_set_ratio as double) as token_set_ratio,
        cast(exact_match as boolean) as is_exact_match,
        cast(token_f1 as double) as token_f1,
        cast(embeddings_model as {{ string_type() }}) as embeddings_model
    from source
)

select * from final
