with source as (
    select * from {{ source('raw', 'server_metrics') }}
),

final as (
    select
        cast(run_id as {{ string_type() }}) as run_id,
        cast(experiment as {{ string_type() }}) as experiment,
        cast(model_copy as integer) as model_copy,
        cast(scraped_at as {{ timestamp_tz_type() }}) as scraped_at,
        cast(family as {{ string_type() }}) as family,
        cast(metric_type as {{ string_type() }}) as metric_type,
        cast(metric as {{ string_type() }}) as metric,
        cast(labels as {{ string_type() }}) as labels,
        cast(value as double) as value
    from source
)

select * from final
