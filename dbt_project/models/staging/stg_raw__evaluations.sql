with source as (
    select * from {{ source('raw', 'evaluations') }}
),

final as (
    select
        cast(evaluation_id as varchar) as evaluation_id,
        cast(run_id as varchar) as run_id,
        cast(experiment as varchar) as experiment,
        cast(payload_file as varchar) as payload_file,
        cast(concurrency as integer) as concurrency,
        cast(request_index as bigint) as request_index,
        cast(session as integer) as collection_session,
        cast(prompt_id as varchar) as prompt_id,
        cast(judge as varchar) as judge,
        cast(judge_backend as varchar) as judge_backend,
        cast(prompt_template as varchar) as prompt_template,
        cast(status as varchar) as call_status,
        cast(verdict as varchar) as judge_verdict,
        cast(explanation as varchar) as explanation,
        cast(error_type as varchar) as error_type,
        cast(error_message as varchar) as error_message,
        cast(prompt_tokens as integer) as prompt_tokens,
        cast(completion_tokens as integer) as completion_tokens,
        cast(latency_ms as double) as latency_ms,
        cast(attempts as integer) as attempts,
        cast(started_at as timestamp with time zone) as started_at
    from source
)

select * from final
