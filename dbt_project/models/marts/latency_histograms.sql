-- One row per cell and latency bin: how many successful measured requests took that long.
-- Bins are logarithmic, var('latency_bins_per_decade') to a factor of ten, so that 20 ms
-- and 20 s requests share one chart.
{%- set per_decade = var('latency_bins_per_decade') %}

with requests as (
    select * from {{ ref('int_requests_classified') }}
    where not is_warmup and is_success and e2e_latency_ms > 0
),

binned as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        cast(floor(log10(e2e_latency_ms) * {{ per_decade }}) as integer) as latency_bin
    from requests
),

counted as (
    select
        run_id,
        experiment,
        payload_file,
        concurrency,
        latency_bin,
        power(10, latency_bin / {{ per_decade }}e0) as latency_bin_lower_ms,
        power(10, (latency_bin + 1) / {{ per_decade }}e0) as latency_bin_upper_ms,
        count(*) as count_successful_requests
    from binned
    group by run_id, experiment, payload_file, concurrency, latency_bin
),

final as (
    select
        *,
        cast(count_successful_requests as double) / sum(count_successful_requests) over (
            partition by run_id, experiment, payload_file, concurrency
        ) as share_of_cell_requests
    from counted
)

select * from final
