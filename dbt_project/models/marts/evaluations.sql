-- One row per evaluation (`fmb evaluate`) of a run, in any state: its settings, how it ended,
-- what it judged, and whether it is the one the accuracy marts count.
with evaluation_runs as (
    select * from {{ ref('stg_raw__evaluation_runs') }}
),

chosen as (
    select * from {{ ref('int_evaluation_runs_chosen') }}
),

calls as (
    select
        evaluation_id,
        count(*) as count_judge_calls,
        count(distinct judge) as count_judges,
        cast(sum(case when judge_verdict is null then 1 else 0 end) as bigint) as count_failed_judge_calls
    from {{ ref('stg_raw__evaluations') }}
    group by evaluation_id
),

scores as (
    select
        evaluation_id,
        count(*) as count_scored_responses
    from {{ ref('stg_raw__evaluation_scores') }}
    group by evaluation_id
),

final as (
    select
        evaluation_runs.evaluation_id,
        evaluation_runs.run_id,
        evaluation_runs.started_at,
        evaluation_runs.ended_at,
        evaluation_runs.evaluation_status,
        evaluation_runs.evaluation_status_message,
        chosen.evaluation_id is not null as is_counted,
        evaluation_runs.voting_method,
        evaluation_runs.use_quantitative_metrics,
        evaluation_runs.correct_cosine_threshold,
        evaluation_runs.incorrect_cosine_threshold,
        evaluation_runs.embeddings_model,
        evaluation_runs.judges_json,
        evaluation_runs.eval_config_path,
        coalesce(calls.count_judges, 0) as count_judges,
        coalesce(calls.count_judge_calls, 0) as count_judge_calls,
        coalesce(calls.count_failed_judge_calls, 0) as count_failed_judge_calls,
        coalesce(scores.count_scored_responses, 0) as count_scored_responses
    from evaluation_runs
    left join chosen on evaluation_runs.evaluation_id = chosen.evaluation_id
    left join calls on evaluation_runs.evaluation_id = calls.evaluation_id
    left join scores on evaluation_runs.evaluation_id = scores.evaluation_id
)

select * from final
