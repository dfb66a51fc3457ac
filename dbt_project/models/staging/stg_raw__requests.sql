with source as (
    select * from {{ source('raw', 'requests') }}
),

final as (
    select
        cast(run_id as {{ string_type() }}) as run_id,
        cast(experiment as {{ string_type() }}) as experiment,
        cast(payload_file as {{ string_type() }}) as payload_file,
        cast(concurrency as integer) as concurrency,
        cast(request_index as bigint) as request_index,
        cast(worker as integer) as worker,
        cast(prompt_id as {{ string_type() }}) as prompt_id,
        cast(is_warmup as boolean) as is_warmup,
        cast(session as integer) as collection_session,
        -- Rows written before fmb recorded shards come from a run on one collector.
        coalesce(cast(shard as integer), 1) as shard,
        coalesce(cast(shard_count as integer), 1) as shard_count,
        cast(model_copy as integer) as model_copy,
        cast(attempts as integer) as attempts,
        cast(started_at as {{ timestamp_tz_type() }}) as started_at,
        cast(ended_at as {{ timestamp_tz_type() }}) as ended_at,
        cast(scheduled_at as {{ timestamp_tz_type() }}) as scheduled_at,
        cast(send_lateness_ms as double) as send_lateness_ms,
        cast(ttft_ms as double) as ttft_ms,
        cast(ttlt_ms as double) as ttlt_ms,
        cast(e2e_latency_ms as double) as e2e_latency_ms,
        chunk_gaps_ms,
        cast(content_chunks as integer) as content_chunks,
        cast(prompt_tokens_server as integer) as prompt_tokens_server,
        cast(completion_tokens_server as integer) as completion_tokens_server,
        cast(prompt_tokens_client as integer) as prompt_tokens_client,
        cast(completion_tokens_client as integer) as completion_tokens_client,
        cast(stream as boolean) as is_streamed,
        cast(status as {{ string_type() }}) as status,
        cast(http_status as integer) as http_status,
        cast(error_type as {{ string_type() }}) as error_type,
        cast(error_message as {{ string_type() }}) as error_message,
        cast(completion_text as {{ string_type() }}) as completion_text
    from source
)

select * from final
