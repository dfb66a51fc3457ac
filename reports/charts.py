"""Charts: matplotlib figures drawn from loaded mart rows. They draw; they compute nothing.

Each function returns a :class:`~matplotlib.figure.Figure`, None when there is nothing to
draw, or :class:`NotDrawn` when a chart would say nothing a line cannot (every error rate
0%). Figures are built with matplotlib's object API, so no global backend or state is
touched. Units match the report's tables: latency and TTFT in seconds.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

Row = dict[str, Any]
FEW_REQUESTS = 50  # a cell with fewer successful requests gets one dot per request, not a histogram
BUDGET_REACH = 1.5  # a budget line may stretch an axis to 1.5 times the data's span; farther, it is clipped
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


@dataclass(frozen=True)
class NotDrawn:
    """A chart left out on purpose, and the line the report says in its place."""

    reason: str


def _payload_note(rows: Iterable[Row]) -> str:
    """Which payload file(s) a chart shows, for its title."""
    return _files_note(sorted({r["payload_file"] for r in rows}))


def _files_note(files: list[str]) -> str:
    return f"payload file {files[0]}" if len(files) == 1 else f"payload files {', '.join(files)}"


def _title(head: str, note: str, fig: Figure) -> str:
    """A title over its note (which payload files), the note wrapped to the figure's width."""
    return f"{head}\n" + textwrap.fill(note, width=int(fig.get_figwidth() * 10), break_long_words=True)


def _span(values: list[float]) -> tuple[float, float]:
    """Axis limits that fit the values: from 0 (latencies, costs and counts are compared as ratios) to
    a margin above the largest, room for a point's label."""
    low, high = min(values), max(values)
    if low >= 0:
        return 0.0, 1.15 * high if high > 0 else 1.0
    pad = 0.1 * (high - low) if high > low else 1.0
    return low - pad, high + pad


def _fit_budget(low: float, high: float, budget: float | None) -> tuple[float, float, bool]:
    """The limits widened to show ``budget`` when that keeps the data readable; and whether it is shown.

    A budget within ``BUDGET_REACH`` times the data's span is drawn (the axis grows to hold it);
    one farther away would squash the data, so the axis keeps to the data and the budget is
    written at the edge instead.
    """
    if budget is None or low <= budget <= high:
        return low, high, budget is not None
    if low < budget <= low + BUDGET_REACH * (high - low):
        return low, budget + 0.05 * (high - low), True
    return low, high, False


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


def price_performance(
    candidates: list[Row], latency_budget_s: float | None, cost_budget_usd: float | None
) -> Figure | None:
    """p95 latency against cost per 10k transactions; size by transactions per minute; colour by concurrency.

    Each point is labelled with its experiment and concurrency. The axes fit the points; a budget
    far outside them is written at the edge of the chart instead of stretching the axis.
    """
    points = [r for r in candidates if r["e2e_latency_p95_ms"] is not None and r["cost_per_10k_txn_usd"] is not None]
    if not points:
        return None
    fig = Figure(figsize=(9, 6), layout="constrained")
    ax = fig.subplots()
    xs = [r["e2e_latency_p95_ms"] / 1000 for r in points]
    ys = [r["cost_per_10k_txn_usd"] for r in points]
    x_low, x_high, show_latency = _fit_budget(*_span(xs), latency_budget_s)
    y_low, y_high, show_cost = _fit_budget(*_span(ys), cost_budget_usd)
    ax.set_xlim(x_low, x_high)
    ax.set_ylim(y_low, y_high)
    top_tpm = max((r["transactions_per_minute"] or 0) for r in points) or 1
    concurrencies = sorted({r["concurrency"] for r in points})
    instance_types = sorted({r["instance_type"] or "-" for r in points})
    several = len({r["payload_file"] for r in points}) > 1
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
    for r in points:
        label = f"{r['experiment']} c={r['concurrency']}" + (f"\n{r['payload_file']}" if several else "")
        x = r["e2e_latency_p95_ms"] / 1000
        right = x > x_low + 0.7 * (x_high - x_low)  # a label near the right edge goes on the point's left
        ax.annotate(
            label,
            (x, r["cost_per_10k_txn_usd"]),
            xytext=(-10 if right else 10, 6),
            textcoords="offset points",
            ha="right" if right else "left",
            fontsize="x-small",
            gid="point-label",
        )
    if latency_budget_s is not None and show_latency:
        ax.axvline(
            latency_budget_s, color="grey", linestyle="--", linewidth=1, label=f"latency budget {latency_budget_s:g} s"
        )
    elif latency_budget_s is not None:
        above = latency_budget_s > x_high
        ax.text(
            0.99 if above else 0.01,
            0.02,
            f"latency budget {latency_budget_s:g} s {'→' if above else '←'} (off the chart)",
            transform=ax.transAxes,
            ha="right" if above else "left",
            va="bottom",
            fontsize="small",
            color="dimgrey",
            gid="budget-off-chart",
        )
    if cost_budget_usd is not None and show_cost:
        ax.axhline(
            cost_budget_usd, color="grey", linestyle=":", linewidth=1, label=f"cost budget {cost_budget_usd:g} USD"
        )
    elif cost_budget_usd is not None:
        above = cost_budget_usd > y_high
        ax.text(
            0.01,
            0.98 if above else 0.02,
            f"cost budget {cost_budget_usd:g} USD {'↑' if above else '↓'} (off the chart)",
            transform=ax.transAxes,
            ha="left",
            va="top" if above else "bottom",
            fontsize="small",
            color="dimgrey",
            gid="budget-off-chart",
        )
    # The region that meets both budgets (clipped to the axes, which are set already).
    ax.fill_between(
        [min(x_low, 0.0), latency_budget_s if latency_budget_s is not None else x_high],
        min(y_low, 0.0),
        cost_budget_usd if cost_budget_usd is not None else y_high,
        color="green",
        alpha=0.08,
        label="meets the budgets",
    )
    ax.set_xlabel("p95 end-to-end latency (s)")
    ax.set_ylabel("cost per 10,000 transactions (USD)")
    ax.set_title(_title("Price vs performance (marker size: transactions per minute)", _payload_note(points), fig))
    ax.grid(True, alpha=0.3)
    # One legend entry per concurrency (colour) and per instance type (marker), not per combination.
    handles = [
        Line2D([], [], marker="o", linestyle="", color=PALETTE[i % len(PALETTE)], label=f"concurrency {c}")
        for i, c in enumerate(concurrencies)
    ]
    handles += [
        Line2D([], [], marker=MARKERS[j % len(MARKERS)], linestyle="", color="grey", label=t)
        for j, t in enumerate(instance_types)
    ]
    ax.legend(
        handles=handles + ax.get_legend_handles_labels()[0],
        fontsize="small",
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
    )
    return fig


def latency_vs_prompt_size(
    prompt_size: list[Row], instance_types: dict[str, str], payload_files: list[str] | None = None
) -> Figure | None:
    """Median latency against prompt tokens, a panel per concurrency, a line per experiment.

    Each point is a prompt-size bucket, labelled with its count of successful requests;
    ``payload_files`` (the run's, which the buckets pool) are named in the title.
    """
    if not prompt_size:
        return None
    by_conc = _series(prompt_size, lambda r: r["concurrency"])
    fig, axes = _grid(len(by_conc))
    experiments = sorted({r["experiment"] for r in prompt_size})
    for ax, (conc, rows) in zip(axes, sorted(by_conc.items()), strict=True):
        for i, exp in enumerate(experiments):
            mine = sorted((r for r in rows if r["experiment"] == exp), key=lambda r: r["prompt_tokens_mean"])
            if mine:
                color = PALETTE[i % len(PALETTE)]
                ax.plot(
                    [r["prompt_tokens_mean"] for r in mine],
                    [r["e2e_latency_p50_ms"] / 1000 for r in mine],
                    marker="o",
                    color=color,
                    label=f"{exp} ({instance_types.get(exp) or '-'})",
                )
                for r in mine:
                    ax.annotate(
                        f"n={r['count_successful_requests']}",
                        (r["prompt_tokens_mean"], r["e2e_latency_p50_ms"] / 1000),
                        xytext=(4, 5),
                        textcoords="offset points",
                        fontsize="x-small",
                        color=color,
                        gid="count",
                    )
        ax.set_title(f"concurrency {conc}")
        ax.set_xlabel("prompt tokens (bucket mean)")
        ax.set_ylabel("p50 end-to-end latency (s)")
        ax.set_xlim(*_span([r["prompt_tokens_mean"] for r in rows]))
        ax.set_ylim(*_span([r["e2e_latency_p50_ms"] / 1000 for r in rows]))
        ax.grid(True, alpha=0.3)
    for ax in axes:
        ax.legend(fontsize="small")
    files = _files_note(payload_files) if payload_files else "all payload files"
    fig.suptitle(_title("Latency vs prompt size (n: successful requests per point)", files, fig))
    return fig


def concurrency_effects(cells: list[Row]) -> Figure | None:
    """TTFT p50 and output tokens per second against concurrency, a line per experiment.

    TTFT is in seconds, as in the report's tables; with no streamed cell there is no TTFT
    panel, only throughput.
    """
    if not cells:
        return None
    several = len({r["payload_file"] for r in cells}) > 1
    lines = _series(cells, lambda r: _line_label(r, several))
    streamed = any(r["ttft_p50_ms"] is not None for r in cells)
    fig = Figure(figsize=(12 if streamed else 7, 4.5), layout="constrained")
    ttft_ax, tput_ax = fig.subplots(1, 2) if streamed else (None, fig.subplots())
    for i, (label, rows) in enumerate(sorted(lines.items())):
        rows = sorted(rows, key=lambda r: r["concurrency"])
        color = PALETTE[i % len(PALETTE)]
        with_ttft = [r for r in rows if r["ttft_p50_ms"] is not None]
        if ttft_ax is not None and with_ttft:
            ttft_ax.plot(
                [r["concurrency"] for r in with_ttft],
                [r["ttft_p50_ms"] / 1000 for r in with_ttft],
                marker="o",
                color=color,
                label=label,
            )
        with_tput = [r for r in rows if r["output_tokens_per_s"] is not None]
        if with_tput:
            tput_ax.plot(
                [r["concurrency"] for r in with_tput],
                [r["output_tokens_per_s"] for r in with_tput],
                marker="o",
                color=color,
                label=label,
            )
    if ttft_ax is not None:
        ttft_ax.set_title("Time to first token")
        ttft_ax.set_ylabel("p50 TTFT (s)")
    tput_ax.set_title("Throughput" if streamed else "Throughput (not streamed: no TTFT)")
    tput_ax.set_ylabel("output tokens per second")
    levels = sorted({r["concurrency"] for r in cells})
    for ax in (a for a in (ttft_ax, tput_ax) if a is not None):
        _concurrency_axis(ax, levels)
        values = [float(y) for line in ax.lines for y in cast(Sequence[float], line.get_ydata())]
        if values:
            ax.set_ylim(*_span(values))
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    fig.suptitle(_title("TTFT and throughput vs concurrency", _payload_note(cells), fig))
    return fig


def error_rates(cells: list[Row]) -> Figure | NotDrawn | None:
    """Error rate against concurrency, a line per experiment; not drawn when no request failed."""
    if not cells:
        return None
    if all(r["error_rate"] in (0, None) for r in cells):
        return NotDrawn(f"no measured request failed (error rate 0% in every cell, {_payload_note(cells)})")
    several = len({r["payload_file"] for r in cells}) > 1
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for i, (label, rows) in enumerate(sorted(_series(cells, lambda r: _line_label(r, several)).items())):
        rows = sorted((r for r in rows if r["error_rate"] is not None), key=lambda r: r["concurrency"])
        ax.plot(
            [r["concurrency"] for r in rows],
            [100 * r["error_rate"] for r in rows],
            marker="o",
            color=PALETTE[i % len(PALETTE)],
            label=label,
        )
    _concurrency_axis(ax, sorted({r["concurrency"] for r in cells}))
    ax.set_ylabel("error rate (%)")
    ax.set_ylim(0, max(5.0, _span([100 * r["error_rate"] for r in cells if r["error_rate"] is not None])[1]))
    ax.set_title(_title("Error rate vs concurrency", _payload_note(cells), fig))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def latency_distribution(histograms: list[Row], cells: list[Row] | None = None) -> Figure | None:
    """The latency of successful requests, a panel per concurrency, log scale.

    A panel whose cells all have at least ``FEW_REQUESTS`` successful requests shows each
    cell's share of requests per latency bin; a panel with a smaller cell (its count from
    ``cells``) shows one dot per request instead, placed in its latency bin and stacked.
    """
    if not histograms:
        return None
    several = len({r["payload_file"] for r in histograms}) > 1
    counts = {
        (c["experiment"], c["payload_file"], c["concurrency"]): c["count_successful_requests"] for c in cells or []
    }
    by_conc = _series(histograms, lambda r: r["concurrency"])
    fig, axes = _grid(len(by_conc))
    labels = sorted({_line_label(r, several) for r in histograms})
    low = min(r["latency_bin_lower_ms"] for r in histograms) / 1000
    high = max(r["latency_bin_upper_ms"] for r in histograms) / 1000
    for ax, (conc, rows) in zip(axes, sorted(by_conc.items()), strict=True):
        few = any(counts.get((r["experiment"], r["payload_file"], conc), FEW_REQUESTS) < FEW_REQUESTS for r in rows)
        if few:
            _strips(ax, rows, labels, several)
        else:
            _histograms(ax, rows, labels, several)
        ax.set_xscale("log")
        ax.set_xlim(low / 1.2, high * 1.2)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"concurrency {conc}")
        ax.set_xlabel("end-to-end latency (s, log scale)")
        ax.grid(True, alpha=0.3, which="both")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:  # a strip panel names its rows on the y axis instead
            ax.legend(fontsize="small")
    fig.suptitle(_title("Per-request latency distribution", _payload_note(histograms), fig))
    return fig


def _histograms(ax: Any, rows: list[Row], labels: list[str], several: bool) -> None:
    for i, label in enumerate(labels):
        color = PALETTE[i % len(PALETTE)]
        mine = [r for r in rows if _line_label(r, several) == label]
        for r in mine:  # the mart holds only bins with requests: one step per bin
            ax.stairs(
                [100 * r["share_of_cell_requests"]],
                [r["latency_bin_lower_ms"] / 1000, r["latency_bin_upper_ms"] / 1000],
                color=color,
                fill=True,
                alpha=0.35,
            )
        if mine:
            ax.plot([], [], color=color, linewidth=6, alpha=0.5, label=label)
    ax.set_ylabel("share of successful requests (%)")


def _strips(ax: Any, rows: list[Row], labels: list[str], several: bool) -> None:
    """One row per cell, one dot per request at the middle of its bin, a bin's dots stacked."""
    shown = [label for label in labels if any(_line_label(r, several) == label for r in rows)]
    names = []
    for y, label in enumerate(shown):
        mine = [r for r in rows if _line_label(r, several) == label]
        xs: list[float] = []
        ys: list[float] = []
        for r in mine:
            middle = (r["latency_bin_lower_ms"] * r["latency_bin_upper_ms"]) ** 0.5 / 1000  # log-scale middle
            n = r["count_successful_requests"]
            xs += [middle] * n
            ys += [y + 0.7 * (k - (n - 1) / 2) / max(n, 8) for k in range(n)]
        ax.scatter(xs, ys, s=14, color=PALETTE[labels.index(label) % len(PALETTE)], alpha=0.7, gid="requests")
        names.append(textwrap.fill(label, width=24, break_long_words=True) + f"\n(n={len(xs)})")
    ax.set_yticks(range(len(shown)), labels=names, fontsize="x-small")
    ax.set_ylim(-0.6, len(shown) - 0.4)
    ax.set_ylabel("one dot per successful request")
