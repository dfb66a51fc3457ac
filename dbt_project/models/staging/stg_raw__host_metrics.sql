with source as (
    select * from {{ source('raw', 'host_metrics') }}
),

final as (
    select
        cast(run_id as varchar) as run_id,
        cast(host as varchar) as host,
        cast(sampled_at as timestamp with time zone) as sampled_at,
        cast(source as varchar) as source,
        cast(device as varchar) as device,
        cast(metric as varchar) as metric,
        cast(value as double) as value,
        cast(unit as varchar) as unit
    from source
)

select * from final
