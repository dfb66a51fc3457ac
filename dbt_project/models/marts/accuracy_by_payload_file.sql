-- One row per run, experiment and payload file with a response judged by the run's
-- evaluation: the accuracy of the experiment's responses to the file's prompts, all
-- concurrency levels together (FMBench's accuracy per payload file).
with votes as (
    select * from {{ ref('int_evaluation_votes') }}
),

final as (
    select
        run_id,
        experiment,
        payload_file,
        {{ accuracy_aggregates() }}
    from votes
    group by run_id, experiment, payload_file
)

select * from final
