-- One row per response judged by the evaluation that counts for its run: the votes of the
-- judges that answered, the majority vote (docs block majority_vote) and the response's scores.
with chosen as (
    select * from {{ ref('int_evaluation_runs_chosen') }}
),

verdicts as (
    select * from {{ ref('int_evaluation_verdicts') }}
),

scores as (
    select scores.*
    from {{ ref('stg_raw__evaluation_scores') }} as scores
    inner join chosen on scores.evaluation_id = chosen.evaluation_id
),

tallied as (
    select
        evaluation_id,
        run_id,
        experiment,
        payload_file,
        concurrency,
        request_index,
        collection_session,
        max(prompt_id) as prompt_id,
        count(*) as count_judge_calls,
        count(distinct judge) as count_judges,
        sum(case when is_answered then 1 else 0 end) as count_judges_answered,
        sum(case when is_answered then 0 else 1 end) as count_judges_failed,
        sum(case when final_verdict = 'correct' then 1 else 0 end) as votes_correct,
        sum(case when final_verdict = 'incorrect' then 1 else 0 end) as votes_incorrect,
        sum(case when final_verdict = 'needs_review' then 1 else 0 end) as votes_needs_review
    from verdicts
    group by evaluation_id, run_id, experiment, payload_file, concurrency, request_index, collection_session
),

-- Every response of the evaluation: judged (a row in verdicts), scored, or both.
responses as (
    select
        evaluation_id,
        run_id,
        experiment,
        payload_file,
        concurrency,
        request_index,
        collection_session
    from tallied
    union
    select
        evaluation_id,
        run_id,
        experiment,
        payload_file,
        concurrency,
        request_index,
        collection_session
    from scores
),

joined as (
    select
        responses.evaluation_id,
        responses.run_id,
        responses.experiment,
        responses.payload_file,
        responses.concurrency,
        responses.request_index,
        responses.collection_session,
        coalesce(tallied.prompt_id, scores.prompt_id) as prompt_id,
        cast(coalesce(tallied.count_judge_calls, 0) as bigint) as count_judge_calls,
        cast(coalesce(tallied.count_judges, 0) as bigint) as count_judges,
        cast(coalesce(tallied.count_judges_answered, 0) as bigint) as count_judges_answered,
        cast(coalesce(tallied.count_judges_failed, 0) as bigint) as count_judges_failed,
        cast(coalesce(tallied.votes_correct, 0) as bigint) as votes_correct,
        cast(coalesce(tallied.votes_incorrect, 0) as bigint) as votes_incorrect,
        cast(coalesce(tallied.votes_needs_review, 0) as bigint) as votes_needs_review,
        scores.ground_truth is not null as has_ground_truth,
        scores.cosine_similarity,
        scores.levenshtein_ratio,
        scores.token_set_ratio,
        scores.is_exact_match,
        scores.token_f1
    from responses
    left join tallied
        on
            responses.evaluation_id = tallied.evaluation_id
            and responses.run_id = tallied.run_id
            and responses.experiment = tallied.experiment
            and responses.payload_file = tallied.payload_file
            and responses.concurrency = tallied.concurrency
            and responses.request_index = tallied.request_index
            and responses.collection_session = tallied.collection_session
    left join scores
        on
            responses.evaluation_id = scores.evaluation_id
            and responses.run_id = scores.run_id
            and responses.experiment = scores.experiment
            and responses.payload_file = scores.payload_file
            and responses.concurrency = scores.concurrency
            and responses.request_index = scores.request_index
            and responses.collection_session = scores.collection_session
),

top as (
    select
        *,
        greatest(votes_correct, votes_incorrect, votes_needs_review) as top_votes
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
        count_judge_calls,
        count_judges,
        count_judges_answered,
        count_judges_failed,
        votes_correct,
        votes_incorrect,
        votes_needs_review,
        -- More than one verdict got the most votes.
        count_judges_answered > 0
        and (case when votes_correct = top_votes then 1 else 0 end)
        + (case when votes_incorrect = top_votes then 1 else 0 end)
        + (case when votes_needs_review = top_votes then 1 else 0 end) > 1 as is_majority_tie,
        case
            when count_judges_answered = 0 then null
            when votes_correct > votes_incorrect and votes_correct > votes_needs_review then 'correct'
            when votes_incorrect > votes_correct and votes_incorrect > votes_needs_review then 'incorrect'
            else 'needs_review'
        end as majority_vote,
        -- Every judge of the response answered, all with the same final verdict.
        count_judges_answered > 0 and count_judges_failed = 0 and top_votes = count_judges_answered
            as is_unanimous,
        has_ground_truth,
        cosine_similarity,
        levenshtein_ratio,
        token_set_ratio,
        is_exact_match,
        token_f1
    from top
)

select * from final
