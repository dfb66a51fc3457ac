"""`fmb report` writes FMBench's per-request and all-metrics CSV files: FMBench's columns, the marts' values."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from click.testing import CliRunner

from fmb.cli import cli
from fmb.config import load_config
from fmb.endpoints import Endpoint
from fmb.paths import ResultsLayout
from fmb.prepare.payloads import prompt_id
from fmb.reports.fmbench_files import ALL_METRICS_COLUMNS, PER_INFERENCE_COLUMNS, file_name
from fmb.warehouse.build import build, warehouse_path
from tests.rawdata import query

# FMBench's columns, in its order, as its 3_run_inference notebook writes them (its per-response dict, then
# the endpoint columns it merges in), less the inference parameters it spreads into columns (named by the config).
FMBENCH_PER_INFERENCE = [
    "endpoint_name", "prompt", "question", "ground_truth", "base64_img", "payload_file", "completion",
    "prompt_tokens", "completion_tokens", "latency", "time_to_first_token", "time_per_output_token",
    "time_to_last_token", "uuid", "experiment_name", "concurrency", "instance_type", "instance_count",
    "EndpointName", "ModelName", "Image", "S3Uri",
]  # fmt: skip
FMBENCH_ALL_METRICS = [
    "experiment_name", "concurrency", "payload_file", "errors", "successes", "error_rate",
    "all_prompts_token_count", "prompt_token_count_mean", "prompt_token_throughput",
    "all_completions_token_count", "completion_token_count_mean", "completion_token_throughput",
    "transactions", "transactions_per_second", "transactions_per_minute", "latency_p50", "latency_p95",
    "latency_p99", "TTFT_p50", "TTFT_p99", "TPOT_p50", "TPOT_p99", "instance_type", "instance_count",
    "EndpointName", "ModelName", "Image", "S3Uri",
]  # fmt: skip

CONFIG = """
general: {{name: fmbench-files, model_name: mock}}
s3_read_data: {{source_data_files: ["synthetic:longbench"]}}
datasets:
  prompt_template_keys: [input, context]
  ground_truth_col_key: answers
  question_col_key: input
  synthetic: {{records: 8, max_context_words: 60}}
  min_iters_per_combination: 8
  max_iters_per_combination: 8
  filters:
  - {{language: en, min_length_in_tokens: 1, max_length_in_tokens: 500, payload_file: payload_en_1-500.jsonl}}
inference_parameters:
  p: {{max_tokens: 12}}
# `{{{{datetime}}}}`: the literal `{{datetime}}` FMBench fills in (its whole config text is formatted first).
report: {{per_inference_request_file: "per_request_{{{{datetime}}}}.csv"}}
experiments:
- name: mock-endpoint
  model_name: mock-model
  api: openai-chat
  endpoint_url: {url}/v1
  instance_type: ml.g5.xlarge
  image_uri: example.com/server:1
  stream: true
  warmup_requests: 1
  inference_spec: {{parameter_set: p}}
  payload_files: [payload_en_1-500.jsonl]
  concurrency_levels: [1, 2]
"""


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, [dict(zip(header, row, strict=True)) for row in reader]


def seconds(value: float | None) -> float | None:
    return None if value is None else value / 1000


def same(text: str, value: Any) -> bool:
    """A CSV field holds the mart's value: empty for null, else the same text or number."""
    if value is None:
        return text == ""
    if isinstance(value, str):
        return text == value
    return text != "" and float(text) == pytest.approx(float(value), rel=1e-12, abs=1e-12)


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, str]:
    from fmb.collector.collect import collect
    from fmb.collector.mock.process import mock_server

    tmp = tmp_path_factory.mktemp("fmbench_files")
    results = tmp / "results"
    with mock_server(ttft_ms=20, itl_ms=2, output_tokens=12, error_rate=0.3, seed=7) as url:
        config = tmp / "config.yml"
        config.write_text(dedent(CONFIG.format(url=url)), encoding="utf-8")
        prepared = CliRunner().invoke(cli, ["prepare", str(config), "--results", str(results)])
        assert prepared.exit_code == 0, prepared.output
        loaded = load_config(config, results_dir=results)
        outcome = collect(loaded, ResultsLayout(results), {"mock-endpoint": Endpoint(f"{url}/v1")}, quiet=True)
    assert outcome.status == "completed"
    build(results)
    out = tmp / "report"
    shown = CliRunner().invoke(cli, ["report", "--results", str(results), "--out", str(out)])
    assert shown.exit_code == 0, shown.output
    return results, out, outcome.run_id, shown.output


@pytest.mark.slow  # a mock server, a collect and a dbt build
def test_the_two_files_have_fmbench_columns_and_the_marts_values(reported) -> None:
    results, out, run_id, output = reported
    assert PER_INFERENCE_COLUMNS == FMBENCH_PER_INFERENCE and ALL_METRICS_COLUMNS == FMBENCH_ALL_METRICS
    (run,) = query(warehouse_path(results), "select started_at from runs where run_id = ?", [run_id])
    per_request = out / f"per_request_{run['started_at'].astimezone(UTC):%Y-%m-%d-%H-%M-%S}.csv"
    all_metrics = out / "all_metrics.csv"  # not in the config: FMBench's default name
    assert f"FMBench result files: {per_request}, {all_metrics}" in output

    header, rows = read_csv(per_request)
    assert header == FMBENCH_PER_INFERENCE
    marts = query(
        warehouse_path(results),
        "select * from requests where run_id = ? order by started_at, experiment, payload_file, concurrency,"
        " request_index",
        [run_id],
    )
    (cells_total,) = query(
        warehouse_path(results), "select sum(count_requests) as n from cells where run_id = ?", [run_id]
    )
    # Measured requests only (no warm-ups): 8 iterations of `concurrency` requests at 1 and at 2.
    assert len(rows) == len(marts) == cells_total["n"] == 8 * 1 + 8 * 2
    statuses = {m["status"] for m in marts}
    assert "ok" in statuses and statuses & {"error", "throttled", "timeout"}  # the mock failed some on purpose
    payloads = {
        prompt_id(r["inputs"]): r
        for r in map(json.loads, (results / "payloads" / "fmbench-files" / "payload_en_1-500.jsonl").open())
    }
    for row, mart in zip(rows, marts, strict=True):
        ok = mart["status"] == "ok"
        assert row["endpoint_name"] == row["EndpointName"] == mart["endpoint"]
        assert row["experiment_name"] == "mock-endpoint" and int(row["concurrency"]) == mart["concurrency"]
        assert row["payload_file"] == "payload_en_1-500.jsonl"
        assert (row["instance_type"], row["instance_count"]) == ("ml.g5.xlarge", "1")
        assert (row["ModelName"], row["Image"], row["S3Uri"], row["base64_img"]) == (
            "mock-model",
            "example.com/server:1",
            "",
            "",
        )
        # FMBench's failure: no completion, completion tokens or latency; its times are in seconds.
        assert same(row["completion"], mart["completion_text"] if ok else None)
        assert same(row["completion_tokens"], mart["completion_tokens"] if ok else None)
        assert same(row["latency"], seconds(mart["e2e_latency_ms"]) if ok else None)
        assert same(row["prompt_tokens"], mart["prompt_tokens"])
        assert same(row["time_to_first_token"], seconds(mart["ttft_ms"]))
        assert same(row["time_per_output_token"], seconds(mart["tpot_ms"]))
        assert same(row["time_to_last_token"], seconds(mart["ttlt_ms"]))
        # The inputs come from the payload record the request sent.
        record = payloads[mart["prompt_id"]]
        assert row["prompt"] == record["inputs"] and prompt_id(row["prompt"]) == mart["prompt_id"]
        assert row["question"] == record["question"]
        truth = record["ground_truth"]
        assert row["ground_truth"] == (",".join(truth) if isinstance(truth, list) else truth) != ""
        if ok:
            assert row["completion"] and float(row["latency"]) > float(row["time_to_first_token"]) > 0
    assert len({r["uuid"] for r in rows}) == len(rows) and all(len(r["uuid"]) == 32 for r in rows)

    header, metrics = read_csv(all_metrics)
    assert header == FMBENCH_ALL_METRICS
    cells = query(
        warehouse_path(results),
        "select c.*, e.endpoint from cells c join experiment_runs e using (run_id, experiment)"
        " where run_id = ? order by experiment, payload_file, concurrency",
        [run_id],
    )
    assert len(metrics) == len(cells) == 2  # one row per cell
    pairs = {
        "successes": "count_successful_requests",
        "error_rate": "error_rate",
        "all_prompts_token_count": "prompt_tokens_total",
        "prompt_token_count_mean": "prompt_tokens_mean",
        "prompt_token_throughput": "input_tokens_per_s",
        "all_completions_token_count": "completion_tokens_total",
        "completion_token_count_mean": "completion_tokens_mean",
        "completion_token_throughput": "output_tokens_per_s",
        "transactions": "count_requests",
        "transactions_per_second": "requests_per_s",
        "transactions_per_minute": "transactions_per_minute",
        "instance_type": "instance_type",
        "instance_count": "instance_count",
        "EndpointName": "endpoint",
    }
    in_seconds = {
        "latency_p50": "e2e_latency_p50_ms",
        "latency_p95": "e2e_latency_p95_ms",
        "latency_p99": "e2e_latency_p99_ms",
        "TTFT_p50": "ttft_p50_ms",
        "TTFT_p99": "ttft_p99_ms",
        "TPOT_p50": "tpot_p50_ms",
        "TPOT_p99": "tpot_p99_ms",
    }
    for row, cell in zip(metrics, cells, strict=True):
        assert (row["experiment_name"], row["payload_file"], int(row["concurrency"])) == (
            cell["experiment"],
            cell["payload_file"],
            cell["concurrency"],
        )
        assert all(same(row[k], cell[v]) for k, v in pairs.items()), row
        assert all(same(row[k], seconds(cell[v])) for k, v in in_seconds.items()), row
        assert cell["e2e_latency_p95_ms"] is not None
        assert (row["errors"], row["ModelName"], row["Image"]) == ("", "mock-model", "example.com/server:1")


@pytest.mark.slow
def test_fmbench_notebooks_read_the_files(reported) -> None:
    """What FMBench's 4_get_evaluations and 5_model_metric_analysis do with the files works on fmb's."""
    pandas = pytest.importorskip("pandas")
    _, out, _, _ = reported
    (per_request,) = out.glob("per_request_*.csv")
    df = pandas.read_csv(per_request)
    assert list(df.endpoint_name.unique()) == [df.EndpointName.iloc[0]]
    deduplicated = df.drop_duplicates(["endpoint_name", "prompt"], keep="last")
    assert 0 < len(deduplicated) <= 8  # the payload file's prompts, each sent at both concurrencies
    assert {"completion", "ground_truth", "question"} <= set(df.columns)
    assert df.latency.describe()["count"] == df.completion.notna().sum() > 0
    assert df.latency.quantile(0.5) > 0 and set(df.concurrency) == {1, 2}

    metrics = pandas.read_csv(out / "all_metrics.csv")
    metrics["instance_count"] = metrics["instance_count"].fillna(1)
    group_by = ["experiment_name", "payload_file", "instance_type", "instance_count", "concurrency"]
    relevant = [
        *group_by,
        "error_rate",
        "prompt_token_count_mean",
        "prompt_token_throughput",
        "completion_token_count_mean",
        "completion_token_throughput",
        "latency_p50",
        "latency_p95",
        "latency_p99",
        "TTFT_p50",
        "TTFT_p99",
        "TPOT_p50",
        "TPOT_p99",
        "transactions_per_minute",
    ]
    summary = metrics[relevant].groupby(group_by).mean().reset_index()
    assert len(summary) == len(metrics) == 2  # one row per cell: the mean is the cell's own value
    assert summary.latency_p50.tolist() == metrics.sort_values(group_by).latency_p50.tolist()
    assert metrics.payload_file.str.contains("en_1-500").all()


def test_file_names_follow_the_config_and_fmbench_defaults() -> None:
    started = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert file_name(None, "all_metrics.csv", started) == "all_metrics.csv"
    assert file_name("", "all_metrics.csv", started) == "all_metrics.csv"
    assert file_name("m_{datetime}.csv", "all_metrics.csv", started) == "m_2026-03-04-05-06-07.csv"
    # Only the name: the files always go beside report.md.
    assert file_name("../elsewhere/x.csv", "all_metrics.csv", started) == "x.csv"


def test_a_warehouse_built_before_the_requests_mart_writes_no_file_and_says_why(tmp_path: Path) -> None:
    import duckdb

    from fmb.reports.fmbench_files import write_fmbench_files

    run = {"run_id": "r1", "benchmark": "b", "started_at": None}
    made = write_fmbench_files(duckdb.connect(), run, {}, tmp_path, tmp_path)
    assert made.per_inference_request_file is None and made.all_metrics_file is None
    assert made.skipped and "fmb build" in made.skipped
    assert list(tmp_path.iterdir()) == []
