-- One row per run that has a completed evaluation: the latest completed one (by started_at,
-- then evaluation_id), the only evaluation the accuracy marts count. Running, failed and
-- interrupted evaluations never count: their verdicts may cover only part of the responses.
with evaluation_runs as (
    select * from {{ ref('stg_raw__evaluation_runs') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by run_id
            order by started_at desc, evaluation_id desc
        ) as recency
    from evaluation_runs
    where evaluation_status = 'completed'
),

final as (
    select
        evaluation_id,
        run_id,
        started_at,
        ended_at,
        voting_method,
        use_quantitative_metrics,
        correct_cosine_threshold,
        incorrect_cosine_threshold,
        embeddings_model,
        judges_json,
        eval_config_path
    from ranked
    where recency = 1
)

select * from final
