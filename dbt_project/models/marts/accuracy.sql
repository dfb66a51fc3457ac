-- One row per cell with a response judged by the run's evaluation: majority-vote accuracy and
-- the mean quantitative scores of its responses (docs blocks accuracy, majority_vote).
with votes as (
    select * from {{ ref('int_evaluation_votes') }}
),

final as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        {{ accuracy_aggregates() }}
    from votes
    group by run_id, experiment, payload_file, concurrency
)

select * from final
