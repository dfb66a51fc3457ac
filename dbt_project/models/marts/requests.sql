-- A view, not a table: a copy of every request row would make the build's time and memory grow
-- with the raw data (its Parquet is the raw requests table already); `fmb report` reads one run.
{{ config(materialized='view') }}

-- One row per measured request (warm-ups and requests cut off by Ctrl-C left out; where
-- `fmb collect --resume` sent a request again, the later session's row): its timings, token
-- counts and generated text, beside the endpoint it went to.
with requests as (
    select * from {{ ref('int_requests_classified') }}
    where not is_warmup and is_measured
),

experiments as (
    select * from {{ ref('stg_raw__experiments') }}
),

final as (
    select
        requests.run_id,
        requests.experiment,
        requests.payload_file,
        requests.concurrency,
        requests.request_index,
        requests.collection_session,
        requests.shard,
        requests.worker,
        requests.prompt_id,
        requests.started_at,
        requests.ended_at,
        requests.scheduled_at,
        requests.send_lateness_ms,
        requests.status,
        requests.is_success,
        requests.error_type,
        requests.http_status,
        requests.e2e_latency_ms,
        requests.ttft_ms,
        requests.ttlt_ms,
        requests.tpot_ms,
        requests.e2e_latency_from_schedule_ms,
        requests.ttft_from_schedule_ms,
        requests.prompt_tokens,
        requests.completion_tokens,
        requests.token_count_source,
        requests.completion_text,
        experiments.backend,
        experiments.endpoint,
        experiments.model_id,
        experiments.model_name,
        experiments.instance_type,
        experiments.instance_count,
        experiments.image_uri,
        experiments.config_experiment,
        experiments.load_mode
    from requests
    left join experiments
        on requests.run_id = experiments.run_id and requests.experiment = experiments.experiment
)

select * from final
