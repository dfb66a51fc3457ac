-- One row per experiment (endpoint) in a run: what it was, how long it ran and what it cost.
-- The experiment's cost covers its whole time in the run, warm-ups included.
with requests as (
    select * from {{ ref('int_requests_classified') }}
),

experiments as (
    select * from {{ ref('int_experiments_priced') }}
),

activity as (
    select
        run_id,
        experiment,
        min(started_at) as first_request_at,
        max(ended_at) as last_response_at,
        count(*) as count_requests_sent,
        cast(count(distinct shard) as integer) as collector_count,
        cast(max(shard_count) as integer) as shard_count,
        cast(sum(case when is_warmup then 1 else 0 end) as bigint) as count_warmup_requests,
        cast(sum(case when is_success then 1 else 0 end) as bigint) as count_successful_requests,
        cast(sum(case when is_failure then 1 else 0 end) as bigint) as count_failed_requests,
        cast(sum(case when is_success then prompt_tokens end) as bigint) as prompt_tokens_total,
        cast(sum(case when is_success then completion_tokens end) as bigint) as completion_tokens_total
    from requests
    group by run_id, experiment
),

joined as (
    select
        experiments.run_id,
        experiments.experiment,
        experiments.backend,
        experiments.endpoint,
        experiments.model_id,
        experiments.model_name,
        experiments.instance_type,
        experiments.instance_count,
        experiments.region,
        experiments.is_deployed_by_fmb,
        experiments.is_streamed,
        experiments.deploy_seconds,
        experiments.image_uri,
        activity.first_request_at,
        activity.last_response_at,
        coalesce(activity.count_requests_sent, 0) as count_requests_sent,
        coalesce(activity.collector_count, 0) as collector_count,
        activity.shard_count,
        coalesce(activity.count_warmup_requests, 0) as count_warmup_requests,
        coalesce(activity.count_successful_requests, 0) as count_successful_requests,
        coalesce(activity.count_failed_requests, 0) as count_failed_requests,
        activity.prompt_tokens_total,
        activity.completion_tokens_total,
        {{ duration_s('activity.first_request_at', 'activity.last_response_at') }} as duration_s,
        experiments.price_key,
        experiments.pricing_type,
        experiments.price_per_hour_usd,
        experiments.input_per_1k_tokens_usd,
        experiments.output_per_1k_tokens_usd
    from experiments
    left join activity
        on experiments.run_id = activity.run_id and experiments.experiment = activity.experiment
),

final as (
    select
        *,
        pricing_type is not null as is_priced,
        {{ cost_usd(
            'pricing_type', 'price_per_hour_usd', 'instance_count',
            'input_per_1k_tokens_usd', 'output_per_1k_tokens_usd',
            'coalesce(duration_s, 0)', 'prompt_tokens_total', 'completion_tokens_total'
        ) }} as experiment_cost_usd
    from joined
)

select * from final
