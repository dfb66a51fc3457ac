with source as (
    select * from {{ source('raw', 'evaluation_runs') }}
),

final as (
    select
        cast(evaluation_id as {{ string_type() }}) as evaluation_id,
        cast(run_id as {{ string_type() }}) as run_id,
        cast(started_at as {{ timestamp_tz_type() }}) as started_at,
        cast(ended_at as {{ timestamp_tz_type() }}) as ended_at,
        cast(status as {{ string_type() }}) as evaluation_status,
        cast(status_message as {{ string_type() }}) as evaluation_status_message,
        cast(method as {{ string_type() }}) as voting_method,
        cast(use_quantitative_metrics as boolean) as use_quantitative_metrics,
        cast(correct_cosine_threshold as double) as correct_cosine_threshold,
        cast(incorrect_cosine_threshold as double) as incorrect_cosine_threshold,
        cast(embeddings_model as {{ string_type() }}) as embeddings_model,
        cast(judges_json as {{ string_type() }}) as judges_json,
        cast(eval_config as {{ string_type() }}) as eval_config_path
    from source
)

select * from final
