with source as (
    select * from {{ source('raw', 'cells') }}
),

final as (
    select
        cast(run_id as {{ string_type() }}) as run_id,
        cast(experiment as {{ string_type() }}) as experiment,
        cast(payload_file as {{ string_type() }}) as payload_file,
        cast(concurrency as integer) as concurrency,
        cast(planned_requests as bigint) as planned_requests,
        cast(warmup_requests as bigint) as warmup_requests,
        cast(skip_reason as {{ string_type() }}) as skip_reason
    from source
)

select * from final
