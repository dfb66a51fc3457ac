-- One row per datapoint of the latest CloudWatch fetch of each run and experiment: a later
-- fetch (`fmb` fetches again once the metrics have settled) supersedes every earlier one.
with datapoints as (
    select * from {{ ref('stg_raw__endpoint_metrics') }}
),

latest as (
    select
        run_id,
        experiment,
        max(fetched_at) as fetched_at
    from datapoints
    group by run_id, experiment
),

final as (
    select datapoints.*
    from datapoints
    inner join latest
        on
            datapoints.run_id = latest.run_id
            and datapoints.experiment = latest.experiment
            and datapoints.fetched_at = latest.fetched_at
)

select * from final
