-- One row per run and pair of judges that both answered at least one response of the run's
-- evaluation: how often they agree, and Cohen's kappa (docs block judge_agreement).
with answered as (
    select * from {{ ref('int_evaluation_verdicts') }}
    where is_answered
),

pairs as (
    select
        a.run_id,
        a.evaluation_id,
        a.judge as judge_a,
        b.judge as judge_b,
        a.judge_verdict as verdict_a,
        b.judge_verdict as verdict_b
    from answered as a
    inner join answered as b
        on
            a.evaluation_id = b.evaluation_id
            and a.run_id = b.run_id
            and a.experiment = b.experiment
            and a.payload_file = b.payload_file
            and a.concurrency = b.concurrency
            and a.request_index = b.request_index
            and a.collection_session = b.collection_session
            and a.judge < b.judge
),

tallied as (
    select
        run_id,
        evaluation_id,
        judge_a,
        judge_b,
        count(*) as count_responses,
        cast(sum(case when verdict_a = verdict_b then 1 else 0 end) as bigint) as count_agreements,
        cast(sum(case when verdict_a = 'correct' then 1 else 0 end) as double) / count(*) as judge_a_correct_share,
        cast(sum(case when verdict_b = 'correct' then 1 else 0 end) as double) / count(*) as judge_b_correct_share
    from pairs
    group by run_id, evaluation_id, judge_a, judge_b
),

agreement as (
    select
        *,
        cast(count_agreements as double) / count_responses as observed_agreement,
        judge_a_correct_share * judge_b_correct_share
        + (1 - judge_a_correct_share) * (1 - judge_b_correct_share) as expected_agreement
    from tallied
),

final as (
    select
        run_id,
        evaluation_id,
        judge_a,
        judge_b,
        count_responses,
        count_agreements,
        judge_a_correct_share,
        judge_b_correct_share,
        observed_agreement,
        expected_agreement,
        case
            when expected_agreement < 1
                then round((observed_agreement - expected_agreement) / (1 - expected_agreement), 12)
        end as cohens_kappa
    from agreement
)

select * from final
