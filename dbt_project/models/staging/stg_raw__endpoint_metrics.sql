with source as (
    select * from {{ source('raw', 'endpoint_metrics') }}
),

final as (
    select
        cast(run_id as {{ string_type() }}) as run_id,
        cast(experiment as {{ string_type() }}) as experiment,
        cast(fetched_at as {{ timestamp_tz_type() }}) as fetched_at,
        cast(namespace as {{ string_type() }}) as namespace,
        cast(metric as {{ string_type() }}) as metric,
        cast(dimensions as {{ string_type() }}) as dimensions,
        cast(stat as {{ string_type() }}) as stat,
        cast(period_s as integer) as period_s,
        cast(period_started_at as {{ timestamp_tz_type() }}) as period_started_at,
        cast(value as double) as value,
        cast(unit as {{ string_type() }}) as unit
    from source
)

select * from final
