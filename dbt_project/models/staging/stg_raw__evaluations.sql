with source as (
    select * from {{ source('raw', 'evaluations') }}
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
        cast(judge as {{ string_type() }}) as judge,
        cast(judge_backend as {{ string_type() }}) as judge_backend,
        cast(prompt_template as {{ string_type() }}) as prompt_template,
        cast(status as {{ string_type() }}) as call_status,
        cast(verdict as {{ string_type() }}) as judge_verdict,
        cast(explanation as {{ string_type() }}) as explanation,
        cast(error_type as {{ string_type() }}) as error_type,
        cast(error_message as {{ string_type() }}) as error_message,
        cast(prompt_tokens as integer) as prompt_tokens,
        cast(completion_tokens as integer) as completion_tokens,
        cast(latency_ms as double) as latency_ms,
        cast(attempts as integer) as attempts,
        cast(started_at as {{ timestamp_tz_type() }}) as started_at
    from source
)

select * from final
