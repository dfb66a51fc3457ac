-- One row per run, experiment, concurrency and prompt-token bucket: latency against prompt size.
{%- set width = var('prompt_token_bucket_size') %}

with requests as (
    select * from {{ ref('int_requests_classified') }}
    where not is_warmup and is_success and prompt_tokens is not null
),

bucketed as (
    select
        *,
        {{ width }} * floor(prompt_tokens / {{ width }}) as prompt_tokens_bucket_start
    from requests
),

final as (
    select
        run_id,
        experiment,
        concurrency,
        cast(prompt_tokens_bucket_start as integer) as prompt_tokens_bucket_start,
        cast(prompt_tokens_bucket_start + {{ width }} as integer) as prompt_tokens_bucket_end,
        count(*) as count_successful_requests,
        avg(prompt_tokens) as prompt_tokens_mean,
        {{ stable_avg("e2e_latency_ms") }} as e2e_latency_mean_ms,
        {{ percentile('e2e_latency_ms', 0.5) }} as e2e_latency_p50_ms,
        {{ percentile('e2e_latency_ms', 0.95) }} as e2e_latency_p95_ms,
        {{ percentile('ttft_ms', 0.5) }} as ttft_p50_ms,
        {{ percentile('ttft_ms', 0.95) }} as ttft_p95_ms,
        {{ percentile('tpot_ms', 0.5) }} as tpot_p50_ms,
        {{ percentile_method() }} as percentile_method
    from bucketed
    group by run_id, experiment, concurrency, prompt_tokens_bucket_start
)

select * from final
