"""The run's timeline per experiment, drawn from the run_timelines mart. It computes nothing.

Three panels share the time axis (seconds since the experiment's first request): the load
(requests fmb had in flight, and what the server says it was running and queueing), the
throughput (output tokens per second as fmb measured them and as the server counted
them), and utilization (GPU, host CPU, and the collector's own CPU). Each cell is a shaded
band labelled with its concurrency, so a queue that grows or a client that runs out of CPU
is seen in the cell where it happened.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

from matplotlib.figure import Figure

from fmb.reports.charts import PALETTE, Row, _title

# (column, label, colour) per panel; a series the mart has no value for is left out.
_LOAD = [
    ("requests_in_flight_mean", "in flight (fmb)", PALETTE[0]),
    ("server_requests_running_mean", "running (server)", PALETTE[1]),
    ("server_requests_waiting_mean", "queued (server)", PALETTE[3]),
]
_THROUGHPUT = [
    ("output_tokens_per_s", "output tokens/s (fmb)", PALETTE[0]),
    ("server_output_tokens_per_s", "output tokens/s (server)", PALETTE[1]),
]
_UTILIZATION = [
    ("gpu_utilization_mean_percent", "GPU", PALETTE[2]),
    ("host_cpu_mean_percent", "host CPU", PALETTE[4]),
    ("client_cpu_percent", "fmb CPU (% of one core)", PALETTE[7]),
    ("kv_cache_usage_percent", "KV cache (server)", PALETTE[5]),
]


def _has(rows: list[Row], column: str) -> bool:
    return any(r.get(column) is not None for r in rows)


def _plot(ax: Any, rows: list[Row], series: list[tuple[str, str, str]], scale: dict[str, float]) -> bool:
    drawn = False
    for column, label, colour in series:
        source = "kv_cache_usage_mean_ratio" if column == "kv_cache_usage_percent" else column
        if not _has(rows, source):
            continue
        points = [(r["seconds_since_start"], r[source] * scale.get(column, 1.0)) for r in rows if r[source] is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], color=colour, label=label, linewidth=1.2, gid=column)
        drawn = True
    return drawn


def _cells(ax: Any, rows: list[Row], labelled: bool) -> None:
    """A band per cell (consecutive buckets of one payload file and concurrency); on the ``labelled`` axis
    each band says its concurrency, and the first band of each payload file names the file."""
    several = len({r["payload_file"] for r in rows if r["payload_file"] is not None}) > 1
    named: set[str] = set()
    for i, ((payload_file, concurrency), group) in enumerate(
        groupby(rows, key=lambda r: (r["payload_file"], r["concurrency"]))
    ):
        if concurrency is None:
            continue
        bucket = list(group)
        start, end = bucket[0]["seconds_since_start"], bucket[-1]["seconds_since_start"] + 1
        ax.axvspan(start, end, color="grey", alpha=0.08 if i % 2 else 0.16, linewidth=0)
        if not labelled:
            continue
        label = f"c={concurrency}"
        if several and payload_file not in named:
            named.add(payload_file)
            label = f"{payload_file}\n{label}"
        ax.text(start, 1.0, label, transform=ax.get_xaxis_transform(), ha="left", va="bottom", fontsize="x-small")


def run_timeline(rows: list[Row], experiment: str) -> Figure | None:
    """The timeline of one experiment of the run; None when the mart has no bucket for it."""
    rows = sorted((r for r in rows if r["experiment"] == experiment), key=lambda r: r["seconds_since_start"])
    if not rows:
        return None
    fig = Figure(figsize=(10.0, 7.5), layout="constrained")
    load, throughput, utilization = fig.subplots(3, 1, sharex=True)
    _plot(load, rows, _LOAD, {})
    load.set_ylabel("requests")
    _plot(throughput, rows, _THROUGHPUT, {})
    throughput.set_ylabel("output tokens/s")
    if _plot(utilization, rows, _UTILIZATION, {"kv_cache_usage_percent": 100.0}):
        utilization.set_ylabel("percent")
    else:
        utilization.text(
            0.5, 0.5, "no utilization sampled", transform=utilization.transAxes, ha="center", va="center", color="grey"
        )
    utilization.set_xlabel("seconds since the experiment's first request")
    for ax in (load, throughput, utilization):
        _cells(ax, rows, labelled=ax is load)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle(_title(f"Timeline: {experiment}", "shaded: the cells, in the order they ran", fig))
    return fig
