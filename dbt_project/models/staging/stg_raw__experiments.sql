with source as (
    select * from {{ source('raw', 'experiments') }}
),

final as (
    select
        cast(run_id as {{ string_type() }}) as run_id,
        cast(experiment as {{ string_type() }}) as experiment,
        cast(backend as {{ string_type() }}) as backend,
        cast(endpoint as {{ string_type() }}) as endpoint,
        cast(model_id as {{ string_type() }}) as model_id,
        cast(model_name as {{ string_type() }}) as model_name,
        cast(instance_type as {{ string_type() }}) as instance_type,
        cast(instance_count as integer) as instance_count,
        cast(region as {{ string_type() }}) as region,
        cast(deployed as boolean) as is_deployed_by_fmb,
        cast(deployment_script as {{ string_type() }}) as deployment_script,
        cast(inference_script as {{ string_type() }}) as inference_script,
        cast(image_uri as {{ string_type() }}) as image_uri,
        cast(stream as boolean) as is_streamed,
        cast(parameter_set as {{ string_type() }}) as parameter_set,
        cast(inference_parameters_json as {{ string_type() }}) as inference_parameters_json,
        cast(deploy_seconds as double) as deploy_seconds,
        -- Rows written before fmb had load modes: closed loop, named as in the config.
        cast(coalesce(config_experiment, experiment) as {{ string_type() }}) as config_experiment,
        cast(coalesce(load_mode, 'closed') as {{ string_type() }}) as load_mode,
        cast(request_rate_per_s as double) as request_rate_per_s,
        cast(burstiness as double) as burstiness,
        cast(trace_speedup as double) as trace_speedup,
        cast(max_in_flight as integer) as max_in_flight,
        cast(ramp_up_s as double) as ramp_up_s,
        cast(arrival_seed as bigint) as arrival_seed,
        cast(lateness_threshold_ms as double) as lateness_threshold_ms,
        cast(knee_min_throughput_gain as double) as knee_min_throughput_gain,
        cast(knee_min_slo_attainment as double) as knee_min_slo_attainment,
        cast(slo_ttft_ms as double) as slo_ttft_ms,
        cast(slo_tpot_ms as double) as slo_tpot_ms,
        cast(slo_e2e_latency_ms as double) as slo_e2e_latency_ms
    from source
)

select * from final
