"""Charts: matplotlib figures drawn from loaded mart rows. They draw; they compute nothing.

Each function returns a :class:`~matplotlib.figure.Figure` (or None when there is
nothing to draw), built with matplotlib's object API so that no global backend or
state is touched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

Row = dict[str, Any]
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _series(rows: Iterable[Row], key: Any) -> dict[Any, list[Row]]:
    out: dict[Any, list[Row]] = defaultdict(list)
    for row in rows:
        out[key(row)].append(row)
    return dict(out)


def _line_label(row: Row, several_payloads: bool) -> str:
    label = row["experiment"]
    return f"{label} | {row['payload_file']}" if several_payloads else label


def _concurrency_axis(ax: Any, levels: list[int]) -> None:
    """Concurrency on the x axis: log-2 spaced when the levels span a factor of 8 or more."""
    if len(levels) > 2 and max(levels) >= 8 * min(levels):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(levels, labels=[str(c) for c in levels])
    ax.set_xlabel("concurrency")


def _grid(n: int, width: float = 4.2, height: float = 3.4) -> tuple[Figure, list[Any]]:
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(width * cols + 1.5, height * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def price_performance(candidates: list[Row], latency_budget_s: float | None, cost_budget_usd: float | None) -> Figure | None:
    """p95 latency against cost per 10k transactions; size by transactions per minute; colour by concurrency."""
    points = [r for r in candidates if r["e2e_latency_p95_ms"] is not None and r["cost_per_10k_txn_usd"] is not None]
    if not points:
        return None
    fig = Figure(figsize=(9, 6), layout="constrained")
    ax = fig.subplots()
    top_tpm = max((r["transactions_per_minute"] or 0) for r in points) or 1
    concurrencies = sorted({r["concurrency"] for r in points})
    instance_types = sorted({r["instance_type"] or "-" for r in points})
    for i, conc in enumerate(concurrencies):
        for j, itype in enumerate(instance_types):
            mine = [r for r in points if r["concurrency"] == conc and (r["instance_type"] or "-") == itype]
            if not mine:
                continue
            ax.scatter(
                [r["e2e_latency_p95_ms"] / 1000 for r in mine],
                [r["cost_per_10k_txn_usd"] for r in mine],
                s=[40 + 460 * (r["transactions_per_minute"] or 0) / top_tpm for r in mine],
                color=PALETTE[i % len(PALETTE)],
                marker=MARKERS[j % len(MARKERS)],
                alpha=0.75,
                edgecolors="black",
                linewidths=0.5,
                gid=f"concurrency={conc}",
            )
    xmax = max(max(r["e2e_latency_p95_ms"] / 1000 for r in points), latency_budget_s or 0) * 1.15
    ymax = max(max(r["cost_per_10k_txn_usd"] for r in points), cost_budget_usd or 0) * 1.15
    if latency_budget_s is not None:
        ax.axvline(latency_budget_s, color="grey", linestyle="--", linewidth=1, label=f"latency budget {latency_budget_s:g} s")
    if cost_budget_usd is not None:
        ax.axhline(cost_budget_usd, color="grey", linestyle=":", linewidth=1, label=f"cost budget {cost_budget_usd:g} USD")
    ax.fill_between(
        [0, latency_budget_s if latency_budget_s is not None else xmax],
        0,
        cost_budget_usd if cost_budget_usd is not None else ymax,
        color="green",
        alpha=0.08,
        label="meets the budgets",
    )
    ax.set_xlim(0, xmax or 1)
    ax.set_ylim(0, ymax or 1)
    ax.set_xlabel("p95 end-to-end latency (s)")
    ax.set_ylabel("cost per 10,000 transactions (USD)")
    ax.set_title("Price vs performance (marker size: transactions per minute)")
    ax.grid(True, alpha=0.3)
    # One legend entry per concurrency (colour) and per instance type (marker), not per combination.
    handles = [Line2D([], [], marker="o", linestyle="", color=PALETTE[i % len(PALETTE)], label=f"concurrency {c}")
               for i, c in enumerate(concurrencies)]
    handles += [Line2D([], [], marker=MARKERS[j % len(MARKERS)], linestyle="", color="grey", label=t)
                for j, t in enumerate(instance_types)]
    ax.legend(handles=handles + ax.get_legend_handles_labels()[0], fontsize="small", loc="upper left",
              bbox_to_anchor=(1.01, 1))
    return fig


def latency_vs_prompt_size(prompt_size: list[Row], instance_types: dict[str, str]) -> Figure | None:
    """Median latency against prompt tokens, a panel per concurrency, a line per experiment."""
    if not prompt_size:
        return None
    by_conc = _series(prompt_size, lambda r: r["concurrency"])
    fig, axes = _grid(len(by_conc))
    experiments = sorted({r["experiment"] for r in prompt_size})
    for ax, (conc, rows) in zip(axes, sorted(by_conc.items()), strict=True):
        for i, exp in enumerate(experiments):
            mine = sorted((r for r in rows if r["experiment"] == exp), key=lambda r: r["prompt_tokens_mean"])
            if mine:
                ax.plot(
                    [r["prompt_tokens_mean"] for r in mine],
                    [r["e2e_latency_p50_ms"] / 1000 for r in mine],
                    marker="o",
                    color=PALETTE[i % len(PALETTE)],
                    label=f"{exp} ({instance_types.get(exp) or '-'})",
                )
        ax.set_title(f"concurrency {conc}")
        ax.set_xlabel("prompt tokens (bucket mean)")
        ax.set_ylabel("p50 end-to-end latency (s)")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.suptitle("Latency vs prompt size")
    return fig


def concurrency_effects(cells: list[Row]) -> Figure | None:
    """TTFT p50 and output tokens per second against concurrency, a line per experiment."""
    if not cells:
        return None
    several = len({r["payload_file"] for r in cells}) > 1
    lines = _series(cells, lambda r: _line_label(r, several))
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    ttft_ax, tput_ax = fig.subplots(1, 2)
    for i, (label, rows) in enumerate(sorted(lines.items())):
        rows = sorted(rows, key=lambda r: r["concurrency"])
        color = PALETTE[i % len(PALETTE)]
        with_ttft = [r for r in rows if r["ttft_p50_ms"] is not None]
        if with_ttft:
            ttft_ax.plot([r["concurrency"] for r in with_ttft], [r["ttft_p50_ms"] for r in with_ttft],
                         marker="o", color=color, label=label)
        with_tput = [r for r in rows if r["output_tokens_per_s"] is not None]
        if with_tput:
            tput_ax.plot([r["concurrency"] for r in with_tput], [r["output_tokens_per_s"] for r in with_tput],
                         marker="o", color=color, label=label)
    ttft_ax.set_title("Time to first token")
    ttft_ax.set_ylabel("p50 TTFT (ms)")
    if not ttft_ax.lines:
        ttft_ax.text(0.5, 0.5, "no streamed responses", ha="center", va="center", transform=ttft_ax.transAxes)
    tput_ax.set_title("Throughput")
    tput_ax.set_ylabel("output tokens per second")
    levels = sorted({r["concurrency"] for r in cells})
    for ax in (ttft_ax, tput_ax):
        _concurrency_axis(ax, levels)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    return fig


def error_rates(cells: list[Row]) -> Figure | None:
    """Error rate against concurrency, a line per experiment."""
    if not cells:
        return None
    several = len({r["payload_file"] for r in cells}) > 1
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for i, (label, rows) in enumerate(sorted(_series(cells, lambda r: _line_label(r, several)).items())):
        rows = sorted(rows, key=lambda r: r["concurrency"])
        ax.plot([r["concurrency"] for r in rows], [100 * r["error_rate"] for r in rows], marker="o",
                color=PALETTE[i % len(PALETTE)], label=label)
    _concurrency_axis(ax, sorted({r["concurrency"] for r in cells}))
    ax.set_ylabel("error rate (%)")
    ax.set_ylim(bottom=0, top=max(5.0, ax.get_ylim()[1]))
    ax.set_title("Error rate vs concurrency")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def latency_distribution(histograms: list[Row]) -> Figure | None:
    """Share of successful requests per latency bin (log scale), a panel per concurrency."""
    if not histograms:
        return None
    several = len({r["payload_file"] for r in histograms}) > 1
    by_conc = _series(histograms, lambda r: r["concurrency"])
    fig, axes = _grid(len(by_conc))
    labels = sorted({_line_label(r, several) for r in histograms})
    low = min(r["latency_bin_lower_ms"] for r in histograms) / 1000
    high = max(r["latency_bin_upper_ms"] for r in histograms) / 1000
    for ax, (conc, rows) in zip(axes, sorted(by_conc.items()), strict=True):
        for i, label in enumerate(labels):
            color = PALETTE[i % len(PALETTE)]
            mine = [r for r in rows if _line_label(r, several) == label]
            for r in mine:  # the mart holds only bins with requests: one step per bin
                ax.stairs([100 * r["share_of_cell_requests"]],
                          [r["latency_bin_lower_ms"] / 1000, r["latency_bin_upper_ms"] / 1000],
                          color=color, fill=True, alpha=0.35)
            if mine:
                ax.plot([], [], color=color, linewidth=6, alpha=0.5, label=label)
        ax.set_xscale("log")
        ax.set_xlim(low / 1.2, high * 1.2)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"concurrency {conc}")
        ax.set_xlabel("end-to-end latency (s, log scale)")
        ax.set_ylabel("share of successful requests (%)")
        ax.grid(True, alpha=0.3, which="both")
    axes[0].legend(fontsize="small")
    fig.suptitle("Per-request latency distribution")
    return fig
