-- One row per cell: counts, exact percentiles, means and throughput over its measured requests.
{%- set latency_metrics = ['e2e_latency_ms', 'ttft_ms', 'ttlt_ms', 'tpot_ms'] %}
{%- set fractions = [(50, 0.5), (90, 0.9), (95, 0.95), (99, 0.99)] %}

with requests as (
    select * from {{ ref('int_requests_classified') }}
    where not is_warmup and is_measured
),

slos as (
    select
        run_id,
        experiment,
        slo_ttft_ms,
        slo_tpot_ms,
        slo_e2e_latency_ms
    from {{ ref('stg_raw__experiments') }}
),

-- A request is within the SLO when it succeeded and meets every objective set; an objective on a
-- metric the request does not have (TTFT of a response that was not streamed) is not met.
judged as (
    select
        requests.*,
        requests.is_success
        and (slos.slo_ttft_ms is null or requests.ttft_ms <= slos.slo_ttft_ms)
        and (slos.slo_tpot_ms is null or requests.tpot_ms <= slos.slo_tpot_ms)
        and (slos.slo_e2e_latency_ms is null or requests.e2e_latency_ms <= slos.slo_e2e_latency_ms)
            as is_within_slo,
        slos.slo_ttft_ms is not null or slos.slo_tpot_ms is not null or slos.slo_e2e_latency_ms is not null
            as has_slo
    from requests
    left join slos
        on requests.run_id = slos.run_id and requests.experiment = slos.experiment
),

successes as (
    select
        *,
        -- Error-adjusted percentiles count a failed request as slower than any: it stands in as 1e300
        -- (mapped to +infinity below, once interpolation is done).
        case when is_failure then 1e300 when is_success then e2e_latency_ms end as adjusted_e2e_latency_ms,
        case when is_failure and is_streamed then 1e300 when is_success then ttft_ms end as adjusted_ttft_ms,
        case when is_success then e2e_latency_ms end as ok_e2e_latency_ms,
        case when is_success then ttft_ms end as ok_ttft_ms,
        case when is_success then ttlt_ms end as ok_ttlt_ms,
        case when is_success then tpot_ms end as ok_tpot_ms,
        case when is_success then e2e_latency_from_schedule_ms end as ok_e2e_latency_from_schedule_ms,
        case when is_success then ttft_from_schedule_ms end as ok_ttft_from_schedule_ms,
        case when is_success then prompt_tokens end as ok_prompt_tokens,
        case when is_success then completion_tokens end as ok_completion_tokens
    from judged
),

aggregated as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        count(*) as count_requests,
        cast(sum(case when is_success then 1 else 0 end) as bigint) as count_successful_requests,
        cast(sum(case when is_failure then 1 else 0 end) as bigint) as count_failed_requests,
        cast(sum(case when status = 'timeout' then 1 else 0 end) as bigint) as count_timed_out_requests,
        cast(sum(case when status = 'throttled' then 1 else 0 end) as bigint) as count_throttled_requests,
        min(started_at) as window_started_at,
        max(ended_at) as window_ended_at,
        {%- for metric in latency_metrics %}
            {%- set column = 'ok_' ~ metric %}
            {%- set stem = metric[:-3] %}
            {{ stable_avg(column) }} as {{ stem }}_mean_ms,
            {%- for label, fraction in fractions %}
                {{ percentile(column, fraction) }} as {{ stem }}_p{{ label }}_ms,
            {%- endfor %}
            max({{ column }}) as {{ stem }}_max_ms,
        {%- endfor %}
        -- Open loop: how late requests were sent (all measured requests), and latency from the schedule.
        {{ percentile('send_lateness_ms', 0.5) }} as send_lateness_p50_ms,
        {{ percentile('send_lateness_ms', 0.99) }} as send_lateness_p99_ms,
        max(send_lateness_ms) as send_lateness_max_ms,
        {{ percentile('ok_e2e_latency_from_schedule_ms', 0.5) }} as e2e_latency_from_schedule_p50_ms,
        {{ percentile('ok_e2e_latency_from_schedule_ms', 0.99) }} as e2e_latency_from_schedule_p99_ms,
        {{ percentile('ok_ttft_from_schedule_ms', 0.5) }} as ttft_from_schedule_p50_ms,
        {{ percentile('ok_ttft_from_schedule_ms', 0.99) }} as ttft_from_schedule_p99_ms,
        {{ percentile('adjusted_e2e_latency_ms', 0.5) }} as adjusted_e2e_latency_p50_ms,
        {{ percentile('adjusted_e2e_latency_ms', 0.99) }} as adjusted_e2e_latency_p99_ms,
        {{ percentile('adjusted_ttft_ms', 0.5) }} as adjusted_ttft_p50_ms,
        {{ percentile('adjusted_ttft_ms', 0.99) }} as adjusted_ttft_p99_ms,
        max(case when has_slo then 1 else 0 end) = 1 as has_slo,
        cast(sum(case when is_within_slo then 1 else 0 end) as bigint) as slo_met_count,
        cast(sum(case when is_within_slo then completion_tokens end) as bigint) as slo_met_completion_tokens,
        avg(ok_prompt_tokens) as prompt_tokens_mean,
        avg(ok_completion_tokens) as completion_tokens_mean,
        cast(sum(ok_prompt_tokens) as bigint) as prompt_tokens_total,
        cast(sum(ok_completion_tokens) as bigint) as completion_tokens_total,
        avg(case when is_success then (case when token_count_source = 'server' then 1e0 else 0e0 end) end)
            as server_token_count_share,
        min(case when is_success then token_count_source end) as first_token_count_source,
        max(case when is_success then token_count_source end) as last_token_count_source,
        avg(case when is_prompt_token_mismatch then 1e0 when not is_prompt_token_mismatch then 0e0 end)
            as prompt_token_mismatch_rate,
        avg(case when is_completion_token_mismatch then 1e0 when not is_completion_token_mismatch then 0e0 end)
            as completion_token_mismatch_rate
    from successes
    group by run_id, experiment, payload_file, concurrency
),

-- A cell resumed by `fmb collect --resume` was measured in several sessions: its window is
-- the sum of each session's window, never the pause between them.
session_windows as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        collection_session,
        {{ duration_s('min(started_at)', 'max(ended_at)') }} as session_window_s
    from requests
    group by run_id, experiment, payload_file, concurrency, collection_session
),

windows as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        sum(session_window_s) as window_s,
        count(*) as count_collection_sessions
    from session_windows
    group by run_id, experiment, payload_file, concurrency
),

final as (
    select
        aggregated.*,
        cast(aggregated.count_failed_requests as double) / aggregated.count_requests as error_rate,
        windows.window_s,
        windows.count_collection_sessions,
        case
            when aggregated.first_token_count_source = aggregated.last_token_count_source
                then aggregated.first_token_count_source
            when aggregated.first_token_count_source is not null then 'mixed'
        end as token_count_source,
        aggregated.count_successful_requests / nullif(windows.window_s, 0) as requests_per_s,
        60 * aggregated.count_successful_requests / nullif(windows.window_s, 0) as transactions_per_minute,
        aggregated.prompt_tokens_total / nullif(windows.window_s, 0) as input_tokens_per_s,
        aggregated.completion_tokens_total / nullif(windows.window_s, 0) as output_tokens_per_s,
        {%- for stem in ['e2e_latency', 'ttft'] %}
            {%- for label in ['p50', 'p99'] %}
                {%- set raw = 'aggregated.adjusted_' ~ stem ~ '_' ~ label ~ '_ms' %}
                case when {{ raw }} > 1e250 then {{ infinity() }} else {{ raw }} end
                    as {{ stem }}_error_adjusted_{{ label }}_ms,
            {%- endfor %}
        {%- endfor %}
        case when aggregated.has_slo then aggregated.slo_met_count end as count_requests_within_slo,
        case when aggregated.has_slo then cast(aggregated.slo_met_count as double) / aggregated.count_requests
        end as slo_attainment,
        case when aggregated.has_slo then aggregated.slo_met_count / nullif(windows.window_s, 0)
        end as goodput_requests_per_s,
        case when aggregated.has_slo then coalesce(aggregated.slo_met_completion_tokens, 0) / nullif(windows.window_s, 0)
        end as goodput_output_tokens_per_s,
        case when aggregated.has_slo then coalesce(aggregated.slo_met_completion_tokens, 0) end
            as completion_tokens_within_slo
    from aggregated
    inner join windows
        on
            aggregated.run_id = windows.run_id
            and aggregated.experiment = windows.experiment
            and aggregated.payload_file = windows.payload_file
            and aggregated.concurrency = windows.concurrency
)

select * from final
