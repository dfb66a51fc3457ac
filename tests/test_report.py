"""`fmb report`: every number equals its mart value; the charts plot the marts' values."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from fmb.cli import cli
from fmb.reports import charts
from fmb.reports.loaders import definitions, load
from fmb.reports.render import render_report
from fmb.warehouse.build import build, warehouse_path
from tests.rawdata import ALL_FAIL, CONFIG, query, write_run

pytestmark = pytest.mark.slow  # servers in subprocesses, dbt builds or a real model

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("report")
    results = tmp / "results"
    # The first run's budgets leave nothing feasible (its report names the nearest misses); the
    # second's latency budget is looser, so its report has a best option.
    runs = [
        write_run(tmp, results, 1, datetime(2026, 2, 1, tzinfo=UTC)),
        write_run(
            tmp,
            results,
            2,
            datetime(2026, 2, 2, tzinfo=UTC),
            config_text=CONFIG.replace("latency_budget: 1.5", "latency_budget: 3"),
        ),
    ]
    build(results)
    return results, runs


def mart(results: Path, sql: str, params: list | None = None) -> list[dict]:
    return query(warehouse_path(results), sql, params)


def section(text: str, heading: str) -> str:
    """The text under a Markdown heading, up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1 :]
    stop = re.search(rf"^#{{1,{len(level)}}} ", rest, re.M)
    return rest[: stop.start()] if stop else rest


def table(text: str) -> list[list[str]]:
    """Rows (cells stripped) of the Markdown tables in a piece of text, without header and rule rows."""
    rows = []
    lines = [line for line in text.splitlines() if line.startswith("|")]
    for i, line in enumerate(lines):
        if set(line) <= {"|", "-", " "} or (i + 1 < len(lines) and set(lines[i + 1]) <= {"|", "-", " "}):
            continue
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def number(text: str) -> float | None:
    """A number as the report writes it (units and thousands separators dropped); n/a is None."""
    text = text.strip().strip("*")
    if text == "n/a":
        return None
    return float(text.replace(",", "").rstrip("%"))


def near(shown: str, value: float | None, scale: float = 1.0) -> bool:
    """The shown text is the value (times scale) rounded to the shown precision (a few-requests mark dropped)."""
    shown = shown.strip().strip("*").rstrip("†‡")
    if value is None:
        return shown == "n/a"
    parsed = number(shown)
    decimals = len(shown.strip().split(".")[1].rstrip("%")) if "." in shown else 0
    return parsed is not None and abs(parsed - value * scale) <= 0.5 * 10**-decimals + 1e-12


def test_report_numbers_equal_the_marts(built, tmp_path: Path) -> None:
    results, (first, second) = built
    made = render_report(warehouse_path(results), tmp_path / "out", None, results)
    assert made.run_id == second  # the latest run by default
    text = made.path.read_text()

    (run,) = mart(results, "select * from runs where run_id = ?", [second])
    assert f"`{second}`" in text and run["config_hash"] in text and run["fmb_version"] in text
    # Warm-ups and measured requests are counted apart and add up to what was sent.
    assert run["count_warmup_requests"] > 0 and run["count_measured_requests"] > 0
    assert (
        f"| Requests | {run['count_requests_sent']} sent = {run['count_warmup_requests']} warm-ups (not measured)"
        f" + {run['count_measured_requests']} measured ({run['count_measured_successful_requests']} succeeded,"
        f" {run['count_measured_failed_requests']} failed)"
    ) in text
    assert run["count_requests_sent"] == (
        run["count_warmup_requests"] + run["count_measured_requests"] + run["count_cut_off_requests"]
    )
    assert "Selection rule (`report.selection: cheapest`): the cheapest cell that meets every budget" in text

    best = mart(
        results,
        "select c.* from recommendations r join cells c using (run_id, experiment, payload_file,"
        " concurrency) where r.run_id = ? and r.is_best_overall",
        [second],
    )
    summary = section(text, "## Summary")
    assert "No option meets every budget" not in summary  # the seeded run has a best option
    (b,) = best
    facts = {row[0]: row[1] for row in table(summary)[:21] if len(row) == 2}
    assert facts["Experiment"] == b["experiment"] and facts["Concurrency"] == str(b["concurrency"])
    assert near(facts["Error rate"], b["error_rate"], 100)
    assert near(facts["Prompt tokens (mean)"], b["prompt_tokens_mean"])
    assert near(facts["Completion throughput (tokens/s)"], b["output_tokens_per_s"])
    mean, p50, p95, p99 = facts["Latency mean / p50 / p95 / p99 (s)"].split(" / ")
    assert near(p50, b["e2e_latency_p50_ms"], 1e-3) and near(p95, b["e2e_latency_p95_ms"], 1e-3)
    assert near(p99, b["e2e_latency_p99_ms"], 1e-3) and near(mean, b["e2e_latency_mean_ms"], 1e-3)
    assert near(facts["Transactions per minute"], b["transactions_per_minute"])
    assert near(facts["Cost per 10,000 transactions (USD)"], b["cost_per_10k_txn_usd"])
    assert near(facts["Cost per 1M output tokens (USD)"], b["cost_per_1m_output_tokens_usd"])

    # Every instance type of the dataset of interest has a row: its best option or its nearest miss.
    flagged = mart(
        results,
        "select instance_type, is_best_for_instance_type, is_nearest_miss_for_instance_type"
        " from recommendations where run_id = ?",
        [second],
    )
    per_type = table(section(text, "### Best option per instance type"))
    assert sorted(row[0].split(" x ", 1)[1] for row in per_type) == sorted({r["instance_type"] for r in flagged})
    for row in per_type:
        (r,) = [
            f
            for f in flagged
            if f["instance_type"] == row[0].split(" x ", 1)[1]
            and (f["is_best_for_instance_type"] or f["is_nearest_miss_for_instance_type"])
        ]
        assert row[1].startswith("yes" if r["is_best_for_instance_type"] else "no, nearest miss: breaks ")

    cells = {
        (c["experiment"], c["payload_file"], c["concurrency"]): c
        for c in mart(results, "select * from cells where run_id = ?", [second])
    }
    all_cells = section(text, "## All cells")
    checked = 0
    for block in re.split(r"^### ", all_cells, flags=re.M)[1:]:
        experiment = block.splitlines()[0].strip()
        for sub in re.split(r"^`", block, flags=re.M)[1:]:
            payload = sub.split("`")[0]
            for row in table(sub):
                cell = cells[(experiment, payload, int(row[0]))]
                assert int(row[1]) == cell["count_requests"]
                assert near(row[2], cell["error_rate"], 100)
                p50, p95, p99 = row[3].split(" / ")
                assert p50.endswith("†") == cell["is_percentile_from_few_requests"]
                assert p99.endswith("‡") == cell["is_p99_from_few_requests"]
                assert near(p50, cell["e2e_latency_p50_ms"], 1e-3) and near(p99, cell["e2e_latency_p99_ms"], 1e-3)
                assert near(row[4].split(" / ")[0], cell["ttft_p50_ms"], 1e-3)
                assert near(row[5].split(" / ")[1], cell["tpot_p95_ms"])
                assert near(row[6], cell["transactions_per_minute"])
                assert near(row[7], cell["output_tokens_per_s"])
                assert near(row[8], cell["cost_per_10k_txn_usd"])
                checked += 1
    assert checked == len(cells)

    costs = {e["experiment"]: e for e in mart(results, "select * from experiment_runs where run_id = ?", [second])}
    for row in table(section(text, "## Cost of the run")):
        if row[0] == "**Total**":
            assert near(row[5], run["run_cost_usd"])
            continue
        assert near(row[3], costs[row[0]]["duration_s"]) and near(row[5], costs[row[0]]["experiment_cost_usd"])

    comparisons = table(section(text, "## Compared with the previous run"))
    previous = {
        (r["experiment"], r["payload_file"], r["concurrency"]): r
        for r in mart(results, "select * from run_comparisons where run_id = ?", [second])
    }
    assert len(comparisons) == len(previous)
    for row in comparisons:
        c = previous[(row[0], row[1], int(row[2]))]
        assert row[3] == f"`{first}`"
        assert near(row[5], c["e2e_latency_p95_change_pct"])

    failures = table(section(text, "## Failed requests"))
    assert (
        sum(int(r[6]) for r in failures)
        == mart(results, "select sum(count_failed_requests) as n from request_errors where run_id = ?", [second])[0][
            "n"
        ]
    )

    for name, _ in definitions():
        assert f"- **{name}**:" in text
    config = yaml.safe_load(text.split("```yaml\n")[1].split("```")[0])
    assert config == json.loads(run["config_json"])


def test_charts_exist_and_plot_the_mart_values(built, tmp_path: Path) -> None:
    results, (_, second) = built
    made = render_report(warehouse_path(results), tmp_path / "out", second, results)
    for chart in made.charts:
        assert chart.file, chart
        data = (made.path.parent / chart.file).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000
        assert f"]({chart.file})" in made.path.read_text()

    data = load(warehouse_path(results), second)
    fig = charts.price_performance(data.candidates, 1.5, 50)
    plotted = {tuple(p) for coll in fig.axes[0].collections if coll.get_gid() for p in coll.get_offsets()}
    expected = {
        (c["e2e_latency_p95_ms"] / 1000, c["cost_per_10k_txn_usd"])
        for c in data.candidates
        if c["cost_per_10k_txn_usd"] is not None and c["e2e_latency_p95_ms"] is not None
    }
    assert plotted == expected

    fig = charts.error_rates(data.candidates)
    lines = {line.get_label(): line.get_xydata().tolist() for line in fig.axes[0].lines}
    for c in data.candidates:
        assert [c["concurrency"], 100 * c["error_rate"]] in lines[c["experiment"]]

    fig = charts.concurrency_effects(data.candidates)
    ttft = {line.get_label(): line.get_xydata().tolist() for line in fig.axes[0].lines}
    for c in data.candidates:
        assert [c["concurrency"], c["ttft_p50_ms"] / 1000] in ttft[c["experiment"]]  # seconds, as in the tables

    fig = charts.latency_vs_prompt_size(data.prompt_size, {})
    points = {tuple(p) for ax in fig.axes for line in ax.lines for p in line.get_xydata().tolist()}
    assert points == {(r["prompt_tokens_mean"], r["e2e_latency_p50_ms"] / 1000) for r in data.prompt_size}

    fig = charts.latency_distribution(data.histograms)
    steps = sorted(
        (ax.get_title(), round(float(p.get_data().edges[0]), 12), round(float(p.get_data().values[0]), 9))
        for ax in fig.axes
        for p in ax.patches
    )
    assert steps == sorted(
        (
            f"concurrency {h['concurrency']}",
            round(h["latency_bin_lower_ms"] / 1000, 12),
            round(100 * h["share_of_cell_requests"], 9),
        )
        for h in data.histograms
    )


NO_PRICES = CONFIG.replace("pricing: pricing.yml", "pricing: nothing.yml")


@pytest.mark.parametrize(
    ("case", "kwargs", "expect"),
    [
        (
            "all failed",
            {"weights": ALL_FAIL},
            ["No request of this run succeeded", "No option meets every budget", "_Not drawn: no successful request_"],
        ),
        (
            "one cell",
            {
                "config_text": CONFIG.split("- name: tokens")[0]
                .replace("[1, 4]", "[1]")
                .replace("latency_budget: 1.5", "latency_budget: 5")
                .replace(
                    "payload_files: [payload_en_1-100.jsonl, payload_en_100-200.jsonl]",
                    "payload_files: [payload_en_1-100.jsonl]",
                )
            },
            ["The best option for this workload is", "### priced"],
        ),
        (
            "no prices",
            {"pricing_text": "pricing: {instance_based: {}}\n"},
            [
                "3 experiments have no price",
                "_Not drawn: no cell of the dataset of interest has both a p95 latency and a price_",
            ],
        ),
        (
            "few requests",
            {"rows_per_cell": 12},
            [
                "No cell can be ranked",
                "cells were left out of the ranking",
                "fewer than 20 requests)",
                "† from fewer than 20 successful requests",
                "‡ p99 from fewer than 100",
            ],
        ),
        (
            "fmbench rule",
            {"config_text": CONFIG.replace("latency_budget: 1.5,", "latency_budget: 1.5, selection: fmbench,")},
            [
                "Selection rule (`report.selection: fmbench`): FMBench's, the highest concurrency that meets every budget"
            ],
        ),
        (
            "no failures",
            {"weights": {"ok": 1}},
            [
                "No measured request failed.",
                "### Error rate vs concurrency\n\n_Not drawn: no measured request failed "
                "(error rate 0% in every cell, payload file payload_en_1-100.jsonl)_",
                "![Per-request latency distribution](latency_distribution.png)",
            ],
        ),
    ],
)
def test_degenerate_runs_still_render(tmp_path: Path, cli_runner, case: str, kwargs: dict, expect: list[str]) -> None:
    results = tmp_path / "results"
    write_run(tmp_path, results, 7, datetime(2026, 3, 1, tzinfo=UTC), **{"rows_per_cell": 30, **kwargs})
    build(results)
    result = cli_runner.invoke(cli, ["report", "--results", str(results)], terminal_width=200)
    assert result.exit_code == 0, result.output
    text = (results / "reports" / "wh-test" / "report.md").read_text()
    for phrase in expect:
        assert phrase in text, (case, phrase)
    assert "Traceback" not in text and "None" not in text.split("## Configuration")[0]


def test_report_errors_are_clear(tmp_path: Path, cli_runner, built) -> None:
    result = cli_runner.invoke(cli, ["report", "--results", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "no warehouse at" in result.output and "dbt build" in result.output
    results, _ = built
    result = cli_runner.invoke(cli, ["report", "--results", str(results), "--run-id", "nope"])
    assert result.exit_code == 1 and "run 'nope' is not in the warehouse" in result.output
