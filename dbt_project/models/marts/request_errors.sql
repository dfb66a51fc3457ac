-- One row per cell and kind of failure: how many measured requests failed that way.
with requests as (
    select * from {{ ref('int_requests_classified') }}
    where not is_warmup and is_failure
),

final as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        status,
        coalesce(error_type, 'unknown') as error_type,
        max(http_status) as http_status,
        count(*) as count_failed_requests,
        min(error_message) as example_error_message,
        min(started_at) as first_failed_at,
        max(started_at) as last_failed_at
    from requests
    group by run_id, experiment, payload_file, concurrency, status, coalesce(error_type, 'unknown')
)

select * from final
