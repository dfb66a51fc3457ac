{%- set spread_metrics = ['e2e_latency_p50_ms', 'e2e_latency_p95_ms', 'ttft_p50_ms', 'transactions_per_minute',
                          'output_tokens_per_s', 'error_rate'] -%}
-- One row per cell of a run group (the runs of one `fmb run --repeat N`): how far its key
-- metrics spread over the group's completed runs, so that a change can be told from noise.
with cells as (
    select * from {{ ref('cells') }}
),

runs as (
    select * from {{ ref('int_runs_merged') }}
    where run_status = 'completed'
),

grouped as (
    select
        runs.run_group,
        cells.*
    from cells
    inner join runs on cells.run_id = runs.run_id
),

final as (
    select
        run_group,
        benchmark,
        experiment,
        payload_file,
        concurrency,
        {%- for metric in spread_metrics %}
            min({{ metric }}) as min_{{ metric }},
            max({{ metric }}) as max_{{ metric }},
            avg({{ metric }}) as mean_{{ metric }},
        {%- endfor %}
        count(*) as count_runs,
        cast(sum(count_requests) as bigint) as count_requests
    from grouped
    group by run_group, benchmark, experiment, payload_file, concurrency
)

select * from final
