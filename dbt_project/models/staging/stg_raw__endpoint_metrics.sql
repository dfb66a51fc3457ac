with source as (
    select * from {{ source('raw', 'endpoint_metrics') }}
),

final as (
    select
        cast(run_id as varchar) as run_id,
        cast(experiment as varchar) as experiment,
        cast(fetched_at as timestamp with time zone) as fetched_at,
        cast(namespace as varchar) as namespace,
        cast(metric as varchar) as metric,
        cast(dimensions as varchar) as dimensions,
        cast(stat as varchar) as stat,
        cast(period_s as integer) as period_s,
        cast(period_started_at as timestamp with time zone) as period_started_at,
        cast(value as double) as value,
        cast(unit as varchar) as unit
    from source
)

select * from final
