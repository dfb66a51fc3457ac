-- One row per judge call of the evaluation that counts for its run: the judge's own verdict
-- and the final verdict after FMBench's cosine-similarity check (docs block verdict_rule).
with chosen as (
    select * from {{ ref('int_evaluation_runs_chosen') }}
),

calls as (
    select * from {{ ref('stg_raw__evaluations') }}
),

scores as (
    select * from {{ ref('stg_raw__evaluation_scores') }}
),

joined as (
    select
        calls.*,
        chosen.use_quantitative_metrics,
        chosen.correct_cosine_threshold,
        chosen.incorrect_cosine_threshold,
        scores.cosine_similarity
    from calls
    inner join chosen on calls.evaluation_id = chosen.evaluation_id
    left join scores
        on
            calls.evaluation_id = scores.evaluation_id
            and calls.run_id = scores.run_id
            and calls.experiment = scores.experiment
            and calls.payload_file = scores.payload_file
            and calls.concurrency = scores.concurrency
            and calls.request_index = scores.request_index
            and calls.collection_session = scores.collection_session
),

checked as (
    select
        *,
        judge_verdict is not null as is_answered,
        -- Whether the response's cosine similarity bears the judge's verdict out; null when the
        -- check is not made (no verdict, use_quantitative_metrics off, or no threshold for it).
        -- A missing cosine similarity never bears a verdict out.
        case
            when judge_verdict is null or not use_quantitative_metrics then null
            when judge_verdict = 'correct' and correct_cosine_threshold is not null
                then coalesce(cosine_similarity >= correct_cosine_threshold, false)
            when judge_verdict = 'incorrect' and incorrect_cosine_threshold is not null
                then coalesce(cosine_similarity <= incorrect_cosine_threshold, false)
        end as is_cosine_check_met
    from joined
),

final as (
    select
        evaluation_id,
        run_id,
        experiment,
        payload_file,
        concurrency,
        request_index,
        collection_session,
        prompt_id,
        judge,
        judge_backend,
        prompt_template,
        call_status,
        judge_verdict,
        is_answered,
        cosine_similarity,
        use_quantitative_metrics,
        correct_cosine_threshold,
        incorrect_cosine_threshold,
        is_cosine_check_met,
        -- FMBench: a correct verdict the cosine similarity does not bear out needs review; an
        -- incorrect verdict stays incorrect either way.
        case
            when judge_verdict = 'correct' and not is_cosine_check_met then 'needs_review'
            else judge_verdict
        end as final_verdict,
        explanation,
        error_type,
        error_message,
        prompt_tokens,
        completion_tokens,
        latency_ms,
        attempts,
        started_at
    from checked
)

select * from final
