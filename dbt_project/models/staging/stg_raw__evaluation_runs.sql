with source as (
    select * from {{ source('raw', 'evaluation_runs') }}
),

final as (
    select
        cast(evaluation_id as varchar) as evaluation_id,
        cast(run_id as varchar) as run_id,
        cast(started_at as timestamp with time zone) as started_at,
        cast(ended_at as timestamp with time zone) as ended_at,
        cast(status as varchar) as evaluation_status,
        cast(status_message as varchar) as evaluation_status_message,
        cast(method as varchar) as voting_method,
        cast(use_quantitative_metrics as boolean) as use_quantitative_metrics,
        cast(correct_cosine_threshold as double) as correct_cosine_threshold,
        cast(incorrect_cosine_threshold as double) as incorrect_cosine_threshold,
        cast(embeddings_model as varchar) as embeddings_model,
        cast(judges_json as varchar) as judges_json,
        cast(eval_config as varchar) as eval_config_path
    from source
)

select * from final
