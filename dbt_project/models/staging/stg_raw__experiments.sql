with source as (
    select * from {{ source('raw', 'experiments') }}
),

final as (
    select
        cast(run_id as varchar) as run_id,
        cast(experiment as varchar) as experiment,
        cast(backend as varchar) as backend,
        cast(endpoint as varchar) as endpoint,
        cast(model_id as varchar) as model_id,
        cast(model_name as varchar) as model_name,
        cast(instance_type as varchar) as instance_type,
        cast(instance_count as integer) as instance_count,
        cast(region as varchar) as region,
        cast(deployed as boolean) as is_deployed_by_fmb,
        cast(deployment_script as varchar) as deployment_script,
        cast(inference_script as varchar) as inference_script,
        cast(image_uri as varchar) as image_uri,
        cast(stream as boolean) as is_streamed,
        cast(parameter_set as varchar) as parameter_set,
        cast(inference_parameters_json as varchar) as inference_parameters_json,
        cast(deploy_seconds as double) as deploy_seconds
    from source
)

select * from final
