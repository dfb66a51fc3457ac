with source as (
    select * from {{ source('raw', 'host_metrics') }}
),

final as (
    select
        cast(run_id as {{ string_type() }}) as run_id,
        cast(host as {{ string_type() }}) as host,
        cast(sampled_at as {{ timestamp_tz_type() }}) as sampled_at,
        cast(source as {{ string_type() }}) as source,
        cast(device as {{ string_type() }}) as device,
        cast(metric as {{ string_type() }}) as metric,
        cast(value as double) as value,
        cast(unit as {{ string_type() }}) as unit
    from source
)

select * from final
