-- One row per request: its outcome class, the token counts its metrics use, and the
-- per-request metrics derived from them.
with requests as (
    select * from {{ ref('int_requests_deduplicated') }}
),

-- The server's count wins when it gave one, else the client tokenizer's; the source says
-- which: server (both counts from the server), client (neither) or mixed (one of them).
counted as (
    select
        *,
        coalesce(prompt_tokens_server, prompt_tokens_client) as prompt_tokens,
        coalesce(completion_tokens_server, completion_tokens_client) as completion_tokens,
        case
            when prompt_tokens_server is not null and completion_tokens_server is not null then 'server'
            when prompt_tokens_server is null and completion_tokens_server is null then 'client'
            else 'mixed'
        end as token_count_source
    from requests
),

final as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        request_index,
        prompt_id,
        is_warmup,
        collection_session,
        worker,
        shard,
        shard_count,
        model_copy,
        is_streamed,
        started_at,
        ended_at,
        scheduled_at,
        send_lateness_ms,
        status,
        error_type,
        http_status,
        error_message,
        completion_text,
        e2e_latency_ms,
        ttft_ms,
        ttlt_ms,
        -- Open loop: latency from when the request was due (what a user arriving then waited; it
        -- does not hide a client that fell behind its schedule, coordinated omission).
        send_lateness_ms + e2e_latency_ms as e2e_latency_from_schedule_ms,
        send_lateness_ms + ttft_ms as ttft_from_schedule_ms,
        prompt_tokens,
        completion_tokens,
        token_count_source,
        status = 'ok' as is_success,
        status in ('error', 'timeout', 'throttled') as is_failure,
        status <> 'cancelled' as is_measured,
        case
            when status = 'ok' and completion_tokens > 1 and ttft_ms is not null and ttlt_ms is not null
                then (ttlt_ms - ttft_ms) / (completion_tokens - 1)
        end as tpot_ms,
        case
            when prompt_tokens_server is not null and prompt_tokens_client is not null
                then prompt_tokens_server <> prompt_tokens_client
        end as is_prompt_token_mismatch,
        case
            when completion_tokens_server is not null and completion_tokens_client is not null
                then completion_tokens_server <> completion_tokens_client
        end as is_completion_token_mismatch
    from counted
)

select * from final
