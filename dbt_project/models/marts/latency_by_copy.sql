-- One row per run, experiment, cell and model copy: how each copy of a model that runs
-- several (FMBench's model_copies) served its share of the requests. Endpoints with one
-- copy have no rows here.
with requests as (
    select * from {{ ref('int_requests_classified') }}
    where not is_warmup and is_measured and model_copy is not null
),

final as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        model_copy,
        count(*) as count_requests,
        cast(sum(case when is_success then 1 else 0 end) as bigint) as count_successful_requests,
        cast(sum(case when is_failure then 1 else 0 end) as bigint) as count_failed_requests,
        cast(sum(case when is_failure then 1 else 0 end) as double) / count(*) as error_rate,
        {{ percentile('case when is_success then e2e_latency_ms end', 0.5) }} as e2e_latency_p50_ms,
        {{ percentile('case when is_success then e2e_latency_ms end', 0.95) }} as e2e_latency_p95_ms,
        {{ percentile('case when is_success then ttft_ms end', 0.5) }} as ttft_p50_ms,
        {{ percentile_method() }} as percentile_method
    from requests
    group by run_id, experiment, payload_file, concurrency, model_copy
)

select * from final
