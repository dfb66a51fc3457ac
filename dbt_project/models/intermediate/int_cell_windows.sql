-- One row per cell and collection session: the measured window of the session, from the first
-- start to the last end of the cell's measured requests (as in int_cells_aggregated). A cell
-- resumed by `fmb collect --resume` has one window per session, never the pause between them.
with requests as (
    select * from {{ ref('int_requests_classified') }}
    where not is_warmup and is_measured
),

final as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        collection_session,
        min(started_at) as window_started_at,
        max(ended_at) as window_ended_at
    from requests
    group by run_id, experiment, payload_file, concurrency, collection_session
)

select * from final
