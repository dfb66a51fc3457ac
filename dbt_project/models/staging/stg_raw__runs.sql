with source as (
    select * from {{ source('raw', 'runs') }}
),

final as (
    select
        cast(run_id as varchar) as run_id,
        cast(benchmark as varchar) as benchmark,
        cast(model_name as varchar) as model_name,
        cast(title as varchar) as report_title,
        cast(config_path as varchar) as config_path,
        cast(config_hash as varchar) as config_hash,
        cast(config_json as varchar) as config_json,
        cast(fmb_version as varchar) as fmb_version,
        cast(host as varchar) as host,
        cast(python_version as varchar) as python_version,
        cast(started_at as timestamp with time zone) as started_at,
        cast(ended_at as timestamp with time zone) as ended_at,
        cast(status as varchar) as run_status,
        cast(status_message as varchar) as run_status_message,
        cast(dataset_of_interest as varchar) as dataset_of_interest,
        cast(selection as varchar) as selection_rule,
        cast(min_requests_for_best as bigint) as min_requests_for_best,
        cast(latency_budget_s as double) as latency_budget_s,
        cast(cost_per_10k_txn_budget_usd as double) as cost_per_10k_txn_budget_usd,
        cast(error_rate_budget as double) as error_rate_budget,
        -- report.accuracy_budget is read from the run's config (no column of its own in raw.runs).
        {{ json_number('config_json', '$.report.accuracy_budget') }} as accuracy_budget,
        cast(txn_count_for_showing_cost as bigint) as txn_count_for_showing_cost,
        -- A run collected before fmb recorded groups is a group of its own.
        coalesce(cast(run_group as varchar), cast(run_id as varchar)) as run_group,
        coalesce(cast(repeat_index as integer), 1) as repeat_index,
        -- A run recorded before fmb recorded shards ran on one collector.
        coalesce(cast(shard as integer), 1) as shard,
        coalesce(cast(shard_count as integer), 1) as shard_count,
        cast(client_cpu_model as varchar) as client_cpu_model,
        cast(client_logical_cores as integer) as client_logical_cores,
        cast(client_memory_bytes as bigint) as client_memory_bytes,
        cast(client_os as varchar) as client_os,
        cast(client_load_1m_before as double) as client_load_1m_before,
        cast(client_load_1m_after as double) as client_load_1m_after,
        cast(client_process_cpu_s as double) as client_process_cpu_s
    from source
)

select * from final
