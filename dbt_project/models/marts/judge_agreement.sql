-- One row per run and judge of its evaluation: how often the judge answered, how often it
-- sided with the majority, its mean Cohen's kappa with the other judges and the panel's
-- Fleiss' kappa (docs block judge_agreement).
with verdicts as (
    select * from {{ ref('int_evaluation_verdicts') }}
),

votes as (
    select * from {{ ref('int_evaluation_votes') }}
),

pairs as (
    select * from {{ ref('judge_pair_agreement') }}
),

with_majority as (
    select
        verdicts.*,
        votes.majority_vote,
        votes.is_majority_tie
    from verdicts
    inner join votes
        on
            verdicts.evaluation_id = votes.evaluation_id
            and verdicts.run_id = votes.run_id
            and verdicts.experiment = votes.experiment
            and verdicts.payload_file = votes.payload_file
            and verdicts.concurrency = votes.concurrency
            and verdicts.request_index = votes.request_index
            and verdicts.collection_session = votes.collection_session
),

per_judge as (
    select
        run_id,
        evaluation_id,
        judge,
        max(judge_backend) as judge_backend,
        count(*) as count_judge_calls,
        cast(sum(case when is_answered then 1 else 0 end) as bigint) as count_answered_calls,
        cast(sum(case when is_answered then 0 else 1 end) as bigint) as count_failed_calls,
        cast(sum(case when final_verdict = 'correct' then 1 else 0 end) as bigint) as count_correct_verdicts,
        cast(sum(case when final_verdict = 'incorrect' then 1 else 0 end) as bigint) as count_incorrect_verdicts,
        cast(sum(case when final_verdict = 'needs_review' then 1 else 0 end) as bigint) as count_needs_review_verdicts,
        cast(sum(case when is_answered and not is_majority_tie then 1 else 0 end) as bigint)
            as count_responses_with_majority,
        cast(
            sum(case when is_answered and not is_majority_tie and final_verdict = majority_vote then 1 else 0 end)
            as bigint
        ) as count_agreements_with_majority
    from with_majority
    group by run_id, evaluation_id, judge
),

-- Each pair once per judge in it, for the judge's mean kappa with the others.
pair_sides as (
    select
        run_id,
        judge_a as judge,
        cohens_kappa
    from pairs
    union all
    select
        run_id,
        judge_b as judge,
        cohens_kappa
    from pairs
),

mean_kappas as (
    select
        run_id,
        judge,
        round(avg(cohens_kappa), 12) as cohens_kappa_mean
    from pair_sides
    group by run_id, judge
),

panels as (
    select
        run_id,
        count(distinct judge) as count_panel_judges
    from verdicts
    group by run_id
),

-- Fleiss' kappa over the responses that every judge of the panel answered.
ratings as (
    select
        verdicts.run_id,
        panels.count_panel_judges as n,
        cast(sum(case when verdicts.judge_verdict = 'correct' then 1 else 0 end) as double) as n_correct
    from verdicts
    inner join panels on verdicts.run_id = panels.run_id
    where verdicts.is_answered and panels.count_panel_judges >= 2
    group by
        verdicts.run_id, panels.count_panel_judges, verdicts.experiment, verdicts.payload_file,
        verdicts.concurrency, verdicts.request_index, verdicts.collection_session
    having count(*) = panels.count_panel_judges
),

fleiss_terms as (
    select
        run_id,
        count(*) as count_fleiss_responses,
        avg((n_correct * n_correct + (n - n_correct) * (n - n_correct) - n) / (n * (n - 1))) as mean_pair_agreement,
        sum(n_correct) / sum(n) as correct_share
    from ratings
    group by run_id
),

fleiss as (
    select
        run_id,
        count_fleiss_responses,
        case
            when correct_share * correct_share + (1 - correct_share) * (1 - correct_share) < 1
                then round(
                    (mean_pair_agreement - (correct_share * correct_share + (1 - correct_share) * (1 - correct_share)))
                    / (1 - (correct_share * correct_share + (1 - correct_share) * (1 - correct_share))),
                    12
                )
        end as fleiss_kappa
    from fleiss_terms
),

final as (
    select
        per_judge.run_id,
        per_judge.evaluation_id,
        per_judge.judge,
        per_judge.judge_backend,
        per_judge.count_judge_calls,
        per_judge.count_answered_calls,
        per_judge.count_failed_calls,
        per_judge.count_correct_verdicts,
        per_judge.count_incorrect_verdicts,
        per_judge.count_needs_review_verdicts,
        -- FMBench's accuracy per judge: its correct over its correct and incorrect final verdicts.
        cast(per_judge.count_correct_verdicts as double)
        / nullif(per_judge.count_correct_verdicts + per_judge.count_incorrect_verdicts, 0) as judge_accuracy,
        per_judge.count_responses_with_majority,
        per_judge.count_agreements_with_majority,
        cast(per_judge.count_agreements_with_majority as double)
        / nullif(per_judge.count_responses_with_majority, 0) as majority_agreement_rate,
        mean_kappas.cohens_kappa_mean,
        panels.count_panel_judges,
        coalesce(fleiss.count_fleiss_responses, 0) as count_fleiss_responses,
        fleiss.fleiss_kappa
    from per_judge
    inner join panels on per_judge.run_id = panels.run_id
    left join mean_kappas on per_judge.run_id = mean_kappas.run_id and per_judge.judge = mean_kappas.judge
    left join fleiss on per_judge.run_id = fleiss.run_id
)

select * from final
