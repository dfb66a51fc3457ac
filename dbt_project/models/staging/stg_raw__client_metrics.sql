with source as (
    select * from {{ source('raw', 'client_metrics') }}
),

final as (
    select
        cast(run_id as {{ string_type() }}) as run_id,
        cast(host as {{ string_type() }}) as host,
        cast(pid as bigint) as pid,
        cast(sampled_at as {{ timestamp_tz_type() }}) as sampled_at,
        cast(interval_s as double) as interval_s,
        cast(cpu_percent as double) as cpu_percent,
        cast(loop_lag_max_ms as double) as loop_lag_max_ms,
        cast(loop_lag_mean_ms as double) as loop_lag_mean_ms,
        cast(in_flight as integer) as in_flight,
        cast(in_flight_max as integer) as in_flight_max,
        cast(requests_started as integer) as requests_started,
        cast(requests_ended as integer) as requests_ended
    from source
)

select * from final
