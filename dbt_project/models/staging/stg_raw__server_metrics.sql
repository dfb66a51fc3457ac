with source as (
    select * from {{ source('raw', 'server_metrics') }}
),

final as (
    select
        cast(run_id as varchar) as run_id,
        cast(experiment as varchar) as experiment,
        cast(model_copy as integer) as model_copy,
        cast(scraped_at as timestamp with time zone) as scraped_at,
        cast(family as varchar) as family,
        cast(metric_type as varchar) as metric_type,
        cast(metric as varchar) as metric,
        cast(labels as varchar) as labels,
        cast(value as double) as value
    from source
)

select * from final
