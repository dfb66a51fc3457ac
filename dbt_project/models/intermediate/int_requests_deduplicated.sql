-- One row per request of a cell: where `fmb collect --resume` sent a request again after it
-- was cut off (cancelled), the row of the later session wins; a finished row always wins
-- over a cancelled one.
with requests as (
    select * from {{ ref('stg_raw__requests') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by run_id, experiment, payload_file, concurrency, request_index
            order by case when status = 'cancelled' then 1 else 0 end, collection_session desc
        ) as row_rank
    from requests
),

final as (
    select * from ranked
    where row_rank = 1
)

select * from final
