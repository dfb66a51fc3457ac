"""The report's charts, drawn from hand-made mart rows: axes fit the data, points say what they are."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from fmb.reports import charts


def cell(
    experiment: str,
    concurrency: int,
    p95_ms: float,
    cost: float,
    payload: str = "payload_en_1-100.jsonl",
    **more: object,
) -> dict:
    row = {
        "experiment": experiment,
        "payload_file": payload,
        "concurrency": concurrency,
        "instance_type": "ml.g5.xlarge",
        "e2e_latency_p95_ms": p95_ms,
        "cost_per_10k_txn_usd": cost,
        "transactions_per_minute": 60.0,
        "ttft_p50_ms": 80.0 * concurrency,
        "output_tokens_per_s": 100.0 * concurrency,
        "error_rate": 0.0,
        "count_successful_requests": 100,
    }
    row.update(more)
    return row


CELLS = [cell("llama", 1, 900, 1.2), cell("llama", 4, 1400, 0.6), cell("mistral", 2, 1100, 0.9)]


def texts(ax, gid: str) -> list[str]:
    return [t.get_text() for t in ax.texts if t.get_gid() == gid]


def contains(limits: tuple[float, float], values: list[float]) -> bool:
    return all(limits[0] <= v <= limits[1] for v in values)


def test_a_far_budget_is_written_at_the_edge_not_drawn_into_the_axis() -> None:
    fig = charts.price_performance(CELLS, latency_budget_s=60, cost_budget_usd=500)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert contains(ax.get_xlim(), [0.9, 1.1, 1.4]) and contains(ax.get_ylim(), [0.6, 0.9, 1.2])
    assert ax.get_xlim()[1] < 2 and ax.get_ylim()[1] < 2  # the data fill the chart, not 1/40th of it
    assert sorted(texts(ax, "budget-off-chart")) == [
        "cost budget 500 USD ↑ (off the chart)",
        "latency budget 60 s → (off the chart)",
    ]
    assert not [line for line in ax.lines if line.get_label().startswith(("latency budget", "cost budget"))]


def test_a_near_budget_is_drawn_and_the_axis_grows_to_hold_it() -> None:
    fig = charts.price_performance(CELLS, latency_budget_s=2.0, cost_budget_usd=1.0)
    ax = fig.axes[0]
    assert ax.get_xlim()[1] > 2.0 and contains(ax.get_ylim(), [0.6, 1.0, 1.2])
    budget_lines = {line.get_label(): line for line in ax.lines}
    assert list(budget_lines["latency budget 2 s"].get_xdata()) == [2.0, 2.0]
    assert list(budget_lines["cost budget 1 USD"].get_ydata()) == [1.0, 1.0]
    assert texts(ax, "budget-off-chart") == []


def test_price_points_are_labelled_with_experiment_and_concurrency_and_the_payload_file_is_named() -> None:
    ax = charts.price_performance(CELLS, None, None).axes[0]
    labels = {t.get_text(): t.xy for t in ax.texts if t.get_gid() == "point-label"}
    assert labels == {"llama c=1": (0.9, 1.2), "llama c=4": (1.4, 0.6), "mistral c=2": (1.1, 0.9)}
    assert "payload file payload_en_1-100.jsonl" in ax.get_title()

    two = [*CELLS, cell("llama", 1, 1000, 1.3, payload="payload_en_100-200.jsonl")]
    ax = charts.price_performance(two, None, None).axes[0]
    assert "llama c=1\npayload_en_100-200.jsonl" in texts(ax, "point-label")
    assert "payload files payload_en_1-100.jsonl, payload_en_100-200.jsonl" in ax.get_title()


def test_latency_vs_prompt_size_shows_the_request_count_of_every_point() -> None:
    rows = [
        {
            "experiment": "llama",
            "concurrency": 1,
            "prompt_tokens_mean": 120.0,
            "e2e_latency_p50_ms": 800.0,
            "count_successful_requests": 37,
        },
        {
            "experiment": "llama",
            "concurrency": 1,
            "prompt_tokens_mean": 610.0,
            "e2e_latency_p50_ms": 1900.0,
            "count_successful_requests": 4,
        },
        {
            "experiment": "llama",
            "concurrency": 8,
            "prompt_tokens_mean": 300.0,
            "e2e_latency_p50_ms": 2500.0,
            "count_successful_requests": 211,
        },
    ]
    fig = charts.latency_vs_prompt_size(rows, {"llama": "ml.g5.xlarge"}, ["a.jsonl", "b.jsonl"])
    counts = {(t.get_text(), t.xy) for ax in fig.axes for t in ax.texts if t.get_gid() == "count"}
    assert counts == {("n=37", (120.0, 0.8)), ("n=4", (610.0, 1.9)), ("n=211", (300.0, 2.5))}
    one, eight = fig.axes
    assert contains(one.get_xlim(), [120, 610]) and contains(one.get_ylim(), [0.8, 1.9])
    assert contains(eight.get_ylim(), [2.5]) and eight.get_ylim()[1] < 3.5
    assert "payload files a.jsonl, b.jsonl" in fig.get_suptitle()


def test_ttft_is_in_seconds_like_the_tables() -> None:
    fig = charts.concurrency_effects(CELLS)
    ttft, tput = fig.axes
    assert ttft.get_ylabel() == "p50 TTFT (s)"
    plotted = {tuple(p) for line in ttft.lines for p in line.get_xydata().tolist()}
    assert plotted == {(1, 0.08), (4, 0.32), (2, 0.16)}
    assert contains(ttft.get_ylim(), [0.08, 0.32]) and contains(tput.get_ylim(), [100, 400])
    assert "payload file payload_en_1-100.jsonl" in fig.get_suptitle()
    template = (Path(charts.__file__).parent / "templates" / "report.md.j2").read_text()
    ttft_headers = re.findall(r"TTFT[^|]*\(m?s\)", template)
    assert ttft_headers and all(h.endswith("(s)") for h in ttft_headers)  # the tables: TTFT in seconds too


def test_no_ttft_panel_when_nothing_was_streamed() -> None:
    fig = charts.concurrency_effects([cell("llama", 1, 900, 1.2, ttft_p50_ms=None)])
    (only,) = fig.axes
    assert only.get_ylabel() == "output tokens per second" and "not streamed" in only.get_title()


def test_an_error_rate_chart_of_zeros_is_a_line_instead() -> None:
    result = charts.error_rates(CELLS)
    assert isinstance(result, charts.NotDrawn)
    assert (
        result.reason == "no measured request failed (error rate 0% in every cell, payload file payload_en_1-100.jsonl)"
    )
    fig = charts.error_rates([*CELLS[:2], {**CELLS[2], "error_rate": 0.25}])
    assert isinstance(fig, Figure)
    assert {tuple(p) for line in fig.axes[0].lines for p in line.get_xydata().tolist()} >= {(2, 25.0)}
    assert 25.0 < fig.axes[0].get_ylim()[1] < 35  # above the highest point, not at its edge
    assert "payload file payload_en_1-100.jsonl" in fig.axes[0].get_title()


def histogram(experiment: str, concurrency: int, bins: dict[int, int]) -> list[dict]:
    total = sum(bins.values())
    return [
        {
            "experiment": experiment,
            "payload_file": "p.jsonl",
            "concurrency": concurrency,
            "latency_bin": b,
            "latency_bin_lower_ms": 10 ** (b / 20),
            "latency_bin_upper_ms": 10 ** ((b + 1) / 20),
            "count_successful_requests": n,
            "share_of_cell_requests": n / total,
        }
        for b, n in bins.items()
    ]


@pytest.mark.parametrize("successes", [12, 49])
def test_a_small_cell_shows_one_dot_per_request(successes: int) -> None:
    small = {60: successes - 5, 61: 3, 64: 2}
    big = {58: 40, 60: 60, 62: 30}
    rows = histogram("llama", 1, small) + histogram("llama", 8, big)
    cells = [
        {"experiment": "llama", "payload_file": "p.jsonl", "concurrency": 1, "count_successful_requests": successes},
        {"experiment": "llama", "payload_file": "p.jsonl", "concurrency": 8, "count_successful_requests": 130},
    ]
    fig = charts.latency_distribution(rows, cells)
    strip, bars = fig.axes
    (dots,) = [c for c in strip.collections if isinstance(c, PathCollection) and c.get_gid() == "requests"]
    xs = [round(x, 9) for x, _ in dots.get_offsets()]
    assert len(xs) == successes
    for b, n in small.items():
        middle = round(10 ** ((2 * b + 1) / 40) / 1000, 9)  # the bin's middle on the log scale, in seconds
        assert xs.count(middle) == n
    assert [t.get_text() for t in strip.get_yticklabels()] == [f"llama\n(n={successes})"]
    assert contains(strip.get_xlim(), [10 ** (58 / 20) / 1000, 10 ** (65 / 20) / 1000])
    assert len(bars.patches) == len(big) and not bars.collections  # enough requests: the histogram
    assert "payload file p.jsonl" in fig.get_suptitle()
