-- One row per run, from the rows of its collectors: a run on one collector has one, a
-- sharded run (`fmb collect --shard I/N`) one per shard that started. The shards ran one
-- config, so the run's settings and client machine come from its lowest shard; it started
-- with its first shard and ended with its last (no end while a shard has none); its status
-- is the worst of its shards' (running, failed, abandoned, interrupted), else `incomplete`
-- when a planned shard never started, else completed. The client figures are the busiest
-- collector's.
with runs as (
    select * from {{ ref('stg_raw__runs') }}
),

ranked as (
    select
        *,
        row_number() over (partition by run_id order by shard) as shard_rank,
        row_number() over (
            partition by run_id
            order by
                case run_status
                    when 'running' then 1
                    when 'failed' then 2
                    when 'abandoned' then 3
                    when 'interrupted' then 4
                    else 5
                end,
                shard
        ) as status_rank
    from runs
),

collectors as (
    select
        run_id,
        min(started_at) as started_at,
        case when count(ended_at) = count(*) then max(ended_at) end as ended_at,
        cast(count(*) as integer) as collector_count,
        cast(count(distinct host) as integer) as host_count,
        cast(count(distinct shard) as integer) as count_started_shards,
        cast(max(shard_count) as integer) as shard_count,
        max(client_load_1m_before) as client_load_1m_before,
        case when count(client_load_1m_after) = count(*) then max(client_load_1m_after) end as client_load_1m_after,
        case when count(client_process_cpu_s) = count(*) then max(client_process_cpu_s) end as client_process_cpu_s
    from runs
    group by run_id
),

worst as (
    select
        run_id,
        run_status,
        run_status_message
    from ranked
    where status_rank = 1
),

first_shard as (
    select * from ranked
    where shard_rank = 1
),

final as (
    select
        first_shard.run_id,
        first_shard.benchmark,
        first_shard.model_name,
        first_shard.report_title,
        first_shard.config_path,
        first_shard.config_hash,
        first_shard.config_json,
        first_shard.fmb_version,
        first_shard.host,
        first_shard.python_version,
        collectors.started_at,
        collectors.ended_at,
        case
            when worst.run_status = 'completed' and collectors.count_started_shards < collectors.shard_count
                then 'incomplete'
            else worst.run_status
        end as run_status,
        case
            when worst.run_status = 'completed' and collectors.count_started_shards < collectors.shard_count
                then concat(
                    'only ', cast(collectors.count_started_shards as {{ string_type() }}), ' of the ',
                    cast(collectors.shard_count as {{ string_type() }}), ' planned shards were collected'
                )
            else worst.run_status_message
        end as run_status_message,
        first_shard.dataset_of_interest,
        first_shard.selection_rule,
        first_shard.min_requests_for_best,
        first_shard.latency_budget_s,
        first_shard.cost_per_10k_txn_budget_usd,
        first_shard.error_rate_budget,
        first_shard.accuracy_budget,
        first_shard.txn_count_for_showing_cost,
        first_shard.run_group,
        first_shard.repeat_index,
        collectors.shard_count,
        collectors.collector_count,
        collectors.host_count,
        collectors.shard_count - collectors.count_started_shards as count_missing_shards,
        first_shard.client_cpu_model,
        first_shard.client_logical_cores,
        first_shard.client_memory_bytes,
        first_shard.client_os,
        collectors.client_load_1m_before,
        collectors.client_load_1m_after,
        collectors.client_process_cpu_s
    from first_shard
    inner join collectors on first_shard.run_id = collectors.run_id
    inner join worst on first_shard.run_id = worst.run_id
)

select * from final
