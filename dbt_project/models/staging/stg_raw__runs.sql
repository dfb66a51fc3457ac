with source as (
    select * from {{ source('raw', 'runs') }}
),

final as (
    select
        cast(run_id as {{ string_type() }}) as run_id,
        cast(benchmark as {{ string_type() }}) as benchmark,
        cast(model_name as {{ string_type() }}) as model_name,
        cast(title as {{ string_type() }}) as report_title,
        cast(config_path as {{ string_type() }}) as config_path,
        cast(config_hash as {{ string_type() }}) as config_hash,
        cast(config_json as {{ string_type() }}) as config_json,
        cast(fmb_version as {{ string_type() }}) as fmb_version,
        cast(host as {{ string_type() }}) as host,
        cast(python_version as {{ string_type() }}) as python_version,
        cast(started_at as {{ timestamp_tz_type() }}) as started_at,
        cast(ended_at as {{ timestamp_tz_type() }}) as ended_at,
        cast(status as {{ string_type() }}) as run_status,
        cast(status_message as {{ string_type() }}) as run_status_message,
        cast(dataset_of_interest as {{ string_type() }}) as dataset_of_interest,
        cast(selection as {{ string_type() }}) as selection_rule,
        cast(min_requests_for_best as bigint) as min_requests_for_best,
        cast(latency_budget_s as double) as latency_budget_s,
        cast(cost_per_10k_txn_budget_usd as double) as cost_per_10k_txn_budget_usd,
        cast(error_rate_budget as double) as error_rate_budget,
        -- report.accuracy_budget is read from the run's config (no column of its own in raw.runs).
        {{ json_number('config_json', '$.report.accuracy_budget') }} as accuracy_budget,
        cast(txn_count_for_showing_cost as bigint) as txn_count_for_showing_cost,
        -- A run collected before fmb recorded groups is a group of its own.
        coalesce(cast(run_group as {{ string_type() }}), cast(run_id as {{ string_type() }})) as run_group,
        coalesce(cast(repeat_index as integer), 1) as repeat_index,
        -- A run recorded before fmb recorded shards ran on one collector.
        coalesce(cast(shard as integer), 1) as shard,
        coalesce(cast(shard_count as integer), 1) as shard_count,
        cast(client_cpu_model as {{ string_type() }}) as client_cpu_model,
        cast(client_logical_cores as integer) as client_logical_cores,
        cast(client_memory_bytes as bigint) as client_memory_bytes,
        cast(client_os as {{ string_type() }}) as client_os,
        cast(client_load_1m_before as double) as client_load_1m_before,
        cast(client_load_1m_after as double) as client_load_1m_after,
        cast(client_process_cpu_s as double) as client_process_cpu_s
    from source
)

select * from final
