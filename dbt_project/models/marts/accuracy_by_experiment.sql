-- One row per run and experiment with a response judged by the run's evaluation: the
-- experiment's overall majority-vote accuracy, every payload file and concurrency together
-- (FMBench's majority-voting accuracy per candidate model).
with votes as (
    select * from {{ ref('int_evaluation_votes') }}
),

final as (
    select
        run_id,
        experiment,
        {{ accuracy_aggregates() }}
    from votes
    group by run_id, experiment
)

select * from final
