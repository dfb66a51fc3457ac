"""Telemetry in the warehouse: server, client, host and endpoint samples with known values -> the marts.

One run of one experiment with two cells one after the other: concurrency 1 (t0+0 s to t0+22 s),
then concurrency 4 (t0+40 s to t0+52 s), whose collector was starved of CPU. The model server is
scraped every second (a vLLM server: queue, batch, KV cache, token and request counters, the token
counter restarted once), the collector and the host sampled every second, CloudWatch fetched
twice. Every expected figure is computed again here from the rows written, following the rules
of the models' descriptions, so a wrong formula shows up as a mismatch.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import dedent

import pytest

from fmb.collector.parquet_io import write_atomic
from fmb.collector.plan import make_plan
from fmb.collector.run_tables import RunRecorder
from fmb.collector.schemas import CLIENT_METRICS, ENDPOINT_METRICS, HOST_METRICS, SERVER_METRICS
from fmb.collector.targets.openai import OpenAITarget
from fmb.collector.writer import RequestWriter
from fmb.config import load_config
from fmb.paths import ResultsLayout
from fmb.prepare.tokens import WordRule
from fmb.warehouse.build import build, warehouse_path
from tests.rawdata import query, write_run

pytestmark = pytest.mark.slow  # dbt builds

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
PAYLOAD = "payload_en_1-100.jsonl"
CONFIG = """
general: {name: telemetry-test}
pricing: pricing.yml
metrics: {dataset_of_interest: en_1-100}
report: {latency_budget: 60, cost_per_10k_txn_budget: 1000, error_rate_budget: 0.5}
experiments:
- name: local
  api: openai-chat
  endpoint_url: http://127.0.0.1:9/v1
  stream: true
  instance_type: ml.g5.xlarge
  payload_files: [payload_en_1-100.jsonl]
  concurrency_levels: [1, 4]
"""
PRICING = "pricing:\n  instance_based: {ml.g5.xlarge: 1.4084}\n"
COMPLETION_TOKENS = 10


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def request_rows(run_id: str) -> list[dict]:
    """Cell 1: 22 requests one after the other from t0, 0.8 s each. Cell 4: 22 requests every 0.5 s from t0+40 s."""
    rows = []
    for concurrency, first_s, step_s, e2e_s in ((1, 0.0, 1.0, 0.8), (4, 40.0, 0.5, 1.5)):
        for i in range(22):
            started = at(first_s + i * step_s)
            rows.append(
                {
                    "run_id": run_id,
                    "experiment": "local",
                    "payload_file": PAYLOAD,
                    "concurrency": concurrency,
                    "request_index": i,
                    "worker": i % concurrency,
                    "prompt_id": f"p{i}",
                    "is_warmup": i < 2,
                    "session": 0,
                    "attempts": 1,
                    "started_at": started,
                    "ended_at": started + timedelta(seconds=e2e_s),
                    "ttft_ms": 50.0,
                    "ttlt_ms": 1000 * e2e_s - 10,
                    "e2e_latency_ms": 1000 * e2e_s,
                    "chunk_gaps_ms": [1.0] * (COMPLETION_TOKENS - 1),
                    "content_chunks": COMPLETION_TOKENS,
                    "prompt_tokens_server": 20,
                    "completion_tokens_server": COMPLETION_TOKENS,
                    "prompt_tokens_client": 20,
                    "completion_tokens_client": COMPLETION_TOKENS,
                    "stream": True,
                    "status": "ok",
                    "http_status": 200,
                    "error_type": None,
                    "error_message": None,
                    "completion_text": None,
                }
            )
    return rows


def write_requests(tmp_path: Path, results: Path) -> tuple[str, list[dict]]:
    (tmp_path / "pricing.yml").write_text(PRICING)
    config = tmp_path / "config.yml"
    config.write_text(dedent(CONFIG))
    loaded = load_config(config, results_dir=results)
    layout = ResultsLayout(results)
    payloads = layout.payload_dir(loaded.name)
    payloads.mkdir(parents=True, exist_ok=True)
    (payloads / PAYLOAD).write_text('{"inputs": "a prompt"}\n')
    plan = make_plan(loaded, layout)
    recorder = RunRecorder(loaded, layout, "run-telemetry")
    recorder.started_at = T0
    recorder.write_experiments(plan, {e.name: OpenAITarget(e, 1) for e in plan.experiments}, {})
    recorder.write_pricing()
    recorder.ensure_prompts(plan, WordRule())
    rows = request_rows(recorder.run_id)
    writer = RequestWriter(layout.requests_dir("local", recorder.run_id), max_rows=50)
    for row in rows:
        writer.add(row)
    writer.close()
    cells = {name: [replace(c, requests=20, warmup=2) for c in cells] for name, cells in plan.cells.items()}
    recorder.write_cells(replace(plan, cells=cells))
    recorder.write_run("completed", ended=True)
    return recorder.run_id, rows


SCRAPES = [0.5 + k for k in range(56)]  # t0+0.5 s ... t0+55.5 s
RESET_AT = 46.5  # the token counter restarts: it reads 7 here


def waiting(s: float) -> float:
    return float(int(s) % 3) if s < 30 else float(5 + int(s) % 4)


def running(s: float) -> float:
    return 1.0 if s < 30 else 4.0


def kv(s: float) -> float:
    return 0.1 + 0.01 * (int(s) % 5) if s < 30 else 0.6 + 0.05 * (int(s) % 4)


def tokens_total(s: float) -> float:
    """Generation tokens counter: 12 per second, restarted just before t0+46.5 s (then 7 per second from 7)."""
    return 12.0 * s if s < RESET_AT else 7.0 + 7.0 * (s - RESET_AT)


def server_rows(run_id: str) -> list[dict]:
    rows = []

    def sample(s: float, family: str, kind: str, metric: str, value: float, labels: dict | None = None) -> None:
        rows.append(
            {
                "run_id": run_id,
                "experiment": "local",
                "model_copy": None,
                "scraped_at": at(s),
                "family": family,
                "metric_type": kind,
                "metric": metric,
                "labels": json.dumps(labels or {"model_name": "m"}, sort_keys=True),
                "value": value,
            }
        )

    for s in SCRAPES:
        sample(s, "vllm:num_requests_waiting", "gauge", "vllm:num_requests_waiting", waiting(s))
        sample(s, "vllm:num_requests_running", "gauge", "vllm:num_requests_running", running(s))
        sample(s, "vllm:kv_cache_usage_perc", "gauge", "vllm:kv_cache_usage_perc", kv(s))
        sample(s, "vllm:generation_tokens", "counter", "vllm:generation_tokens_total", tokens_total(s))
        sample(s, "vllm:prompt_tokens", "counter", "vllm:prompt_tokens_total", 40.0 * s)
        for reason, per_s in (("stop", 1.0), ("length", 0.5)):
            labels = {"finished_reason": reason, "model_name": "m"}
            sample(s, "vllm:request_success", "counter", "vllm:request_success_total", per_s * s, labels)
        # Not a measure fmb knows: left out.
        sample(s, "vllm:cache_config_info", "gauge", "vllm:cache_config_info", 1.0)
    return rows


def client_cpu(s: float) -> float:
    return 20.0 + (int(s) % 3) if s < 30 else 95.0 + (int(s) % 2)


def client_lag(s: float) -> float:
    return 2.0 + (int(s) % 4) if s < 30 else 30.0 + (int(s) % 5)


def client_in_flight(s: float) -> int:
    return 1 if s < 30 else 3 + int(s) % 2


def client_rows(run_id: str) -> list[dict]:
    return [
        {
            "run_id": run_id,
            "host": "h",
            "pid": 7,
            "sampled_at": at(s),
            "interval_s": 1.0,
            "cpu_percent": client_cpu(s),
            "loop_lag_max_ms": client_lag(s),
            "loop_lag_mean_ms": 1.0,
            "in_flight": client_in_flight(s),
            "in_flight_max": client_in_flight(s),
            "requests_started": 1,
            "requests_ended": 1,
        }
        for s in (0.25 + k for k in range(56))
    ]


def gpu(s: float, device: int) -> float:
    return 30.0 + 10 * device + (int(s) % 7) if s < 30 else 80.0 + 5 * device + (int(s) % 6)


def host_cpu(s: float) -> float:
    return 10.0 + int(s) % 4


def host_rows(run_id: str) -> list[dict]:
    rows = []
    for s in (0.75 + k for k in range(56)):

        def sample(source: str, device: str, metric: str, value: float, unit: str) -> None:
            rows.append(
                {
                    "run_id": run_id,
                    "host": "h",
                    "sampled_at": at(s),  # noqa: B023
                    "source": source,
                    "device": device,
                    "metric": metric,
                    "value": value,
                    "unit": unit,
                }
            )

        sample("host", "host", "cpu_percent", host_cpu(s), "percent")
        sample("host", "host", "memory_used_bytes", 1e9 + 1e6 * int(s), "bytes")
        for device in (0, 1):
            sample("nvidia", str(device), "gpu_utilization_percent", gpu(s, device), "percent")
            sample("nvidia", str(device), "gpu_memory_used_bytes", 2e9 + 1e6 * int(s) * (device + 1), "bytes")
            sample("nvidia", str(device), "gpu_power_watts", 100.0 + device + int(s) % 2, "watts")
    return rows


def endpoint_rows(run_id: str) -> list[dict]:
    """Two fetches: the later one (values x 10) supersedes the first; one period lies after the experiment."""
    rows = []
    for fetched_s, factor in ((120, 1.0), (600, 10.0)):
        for period_s, invocations, latency, count in ((-30, 10.0, 200.0, 10.0), (30, 34.0, 100.0, 30.0), (90, 5, 1, 5)):
            for metric, stat, value, unit in (
                ("Invocations", "Sum", invocations, "None"),
                ("ModelLatency", "Average", latency, "Microseconds"),
                ("ModelLatency", "SampleCount", count, "Microseconds"),
                ("ModelLatency", "Maximum", latency * 2, "Microseconds"),
            ):
                rows.append(
                    {
                        "run_id": run_id,
                        "experiment": "local",
                        "fetched_at": at(fetched_s),
                        "namespace": "AWS/SageMaker",
                        "metric": metric,
                        "dimensions": '{"EndpointName": "e", "VariantName": "AllTraffic"}',
                        "stat": stat,
                        "period_s": 60,
                        "period_started_at": at(period_s),
                        "value": value * factor,
                        "unit": unit,
                    }
                )
    return rows


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    tmp = tmp_path_factory.mktemp("telemetry")
    results = tmp / "results"
    run_id, requests = write_requests(tmp, results)
    layout = ResultsLayout(results)
    write_atomic(server_rows(run_id), SERVER_METRICS, layout.server_metrics_dir(run_id) / "part-00000.parquet")
    write_atomic(client_rows(run_id), CLIENT_METRICS, layout.client_metrics_dir(run_id) / "part-00000.parquet")
    write_atomic(host_rows(run_id), HOST_METRICS, layout.host_metrics_dir(run_id) / "part-00000.parquet")
    write_atomic(endpoint_rows(run_id), ENDPOINT_METRICS, layout.endpoint_metrics_dir(run_id) / "part-00000.parquet")
    build(results)
    return warehouse_path(results), requests


def windows(requests: list[dict]) -> dict[int, tuple[datetime, datetime]]:
    """The measured window of each cell (by concurrency)."""
    out = {}
    for concurrency in (1, 4):
        measured = [r for r in requests if r["concurrency"] == concurrency and not r["is_warmup"]]
        out[concurrency] = (min(r["started_at"] for r in measured), max(r["ended_at"] for r in measured))
    return out


def p95(values: list[float]) -> float:
    """Exact continuous percentile, as quantile_cont."""
    ordered = sorted(values)
    position = 0.95 * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_server_states_per_cell(built) -> None:
    warehouse, requests = built
    rows = {r["concurrency"]: r for r in query(warehouse, "select * from server_states")}
    assert set(rows) == {1, 4}
    for concurrency, (start, end) in windows(requests).items():
        row = rows[concurrency]
        inside = [s for s in SCRAPES if start <= at(s) <= end]
        assert row["count_server_samples"] == len(inside)
        assert row["requests_waiting_mean"] == pytest.approx(mean([waiting(s) for s in inside]))
        assert row["requests_waiting_p95"] == pytest.approx(p95([waiting(s) for s in inside]))
        assert row["requests_running_mean"] == pytest.approx(mean([running(s) for s in inside]))
        assert row["requests_running_p95"] == pytest.approx(p95([running(s) for s in inside]))
        assert row["kv_cache_usage_mean_ratio"] == pytest.approx(mean([kv(s) for s in inside]))
        assert row["kv_cache_usage_max_ratio"] == pytest.approx(max(kv(s) for s in inside))
        in_system = [waiting(s) + running(s) for s in inside]
        assert row["server_requests_in_system_mean"] == pytest.approx(mean(in_system))
        # Counter intervals with both scrapes inside the window; the restart counts its new value.
        pairs = list(itertools.pairwise(inside))
        increases = []
        for a, b in pairs:
            before, after = tokens_total(a), tokens_total(b)
            increases.append(after - before if after >= before else after)
        tokens_per_s = sum(increases) / (inside[-1] - inside[0])
        assert row["server_output_tokens_per_s"] == pytest.approx(tokens_per_s)
        assert row["server_input_tokens_per_s"] == pytest.approx(40.0)
        assert row["server_requests_completed_per_s"] == pytest.approx(1.5)
        measured = [r for r in requests if r["concurrency"] == concurrency and not r["is_warmup"]]
        client_tokens = COMPLETION_TOKENS * len(measured) / (end - start).total_seconds()
        assert row["client_output_tokens_per_s"] == pytest.approx(client_tokens)
        assert row["server_to_client_tokens_ratio"] == pytest.approx(tokens_per_s / client_tokens)
        assert row["is_tokens_per_s_disagreement"] == (abs(tokens_per_s / client_tokens - 1) > 0.2)
        # The host: GPUs averaged over both devices, the busiest GPU's p95, the largest GPU's memory.
        host_inside = [s for s in (0.75 + k for k in range(56)) if start <= at(s) <= end]
        gpu_means = [mean([gpu(s, d) for s in host_inside]) for d in (0, 1)]
        assert row["gpu_utilization_mean_percent"] == pytest.approx(mean(gpu_means))
        assert row["gpu_utilization_p95_percent"] == pytest.approx(
            max(p95([gpu(s, d) for s in host_inside]) for d in (0, 1))
        )
        assert row["gpu_memory_used_max_bytes"] == pytest.approx(max(2e9 + 2e6 * int(s) for s in host_inside))
        power = sum(mean([100.0 + d + int(s) % 2 for s in host_inside]) for d in (0, 1))
        assert row["gpu_power_mean_watts"] == pytest.approx(power)
        assert row["host_cpu_mean_percent"] == pytest.approx(mean([host_cpu(s) for s in host_inside]))
        assert row["host_memory_used_max_bytes"] == pytest.approx(max(1e9 + 1e6 * int(s) for s in host_inside))
        assert row["neuroncore_utilization_mean_percent"] is None
        # The client.
        client_inside = [s for s in (0.25 + k for k in range(56)) if start <= at(s) <= end]
        assert row["count_client_samples"] == len(client_inside)
        assert row["client_cpu_mean_percent"] == pytest.approx(mean([client_cpu(s) for s in client_inside]))
        assert row["client_cpu_max_percent"] == max(client_cpu(s) for s in client_inside)
        assert row["client_loop_lag_p95_ms"] == pytest.approx(p95([client_lag(s) for s in client_inside]))
        assert row["client_loop_lag_max_ms"] == max(client_lag(s) for s in client_inside)
        assert row["concurrency_sent_mean"] == pytest.approx(mean([client_in_flight(s) for s in client_inside]))
    # The starved cell: its collector used about 95% of a core.
    assert (rows[1]["is_client_saturated"], rows[1]["client_saturation_reason"]) == (False, None)
    assert (rows[4]["is_client_saturated"], rows[4]["client_saturation_reason"]) == (True, "cpu")
    # The restart falls in the second cell: its rate is below the 12 tokens per second before it.
    assert rows[1]["server_output_tokens_per_s"] == pytest.approx(12.0)
    assert rows[4]["server_output_tokens_per_s"] < 12.0


def test_cells_and_recommendations_leave_out_the_saturated_cell(built) -> None:
    warehouse, _ = built
    cells = {r["concurrency"]: r for r in query(warehouse, "select * from cells")}
    states = {r["concurrency"]: r for r in query(warehouse, "select * from server_states")}
    for concurrency in (1, 4):
        for column in ("is_client_saturated", "client_saturation_reason", "gpu_utilization_mean_percent"):
            assert cells[concurrency][column] == states[concurrency][column]
        assert cells[concurrency]["server_requests_waiting_mean"] == states[concurrency]["requests_waiting_mean"]
    picks = {r["concurrency"]: r for r in query(warehouse, "select * from recommendations")}
    assert (picks[4]["is_eligible"], picks[4]["ineligible_reason"]) == (False, "client_saturated")
    assert (picks[1]["is_eligible"], picks[1]["ineligible_reason"]) == (True, None)
    assert picks[1]["is_best_overall"] and not picks[4]["is_best_overall"]


def test_each_request_gets_the_server_state_at_its_start(built) -> None:
    warehouse, requests = built
    rows = query(warehouse, "select * from request_server_states order by concurrency, request_index")
    measured = [r for r in requests if not r["is_warmup"]]
    assert len(rows) == len(measured)
    for row in rows:
        started = row["started_at"]
        ended = row["ended_at"]
        before = max(s for s in SCRAPES if at(s) <= started)
        assert row["requests_waiting_at_start"] == waiting(before)
        assert row["requests_running_at_start"] == running(before)
        assert row["kv_cache_usage_at_start_ratio"] == pytest.approx(kv(before))
        # Over its life: the state at its start and every scrape until it ended.
        life = [before] + [s for s in SCRAPES if started < at(s) <= ended]
        assert row["count_server_samples"] == len(life)
        assert row["requests_waiting_mean"] == pytest.approx(mean([waiting(s) for s in life]))
        assert row["requests_waiting_max"] == max(waiting(s) for s in life)
        assert row["kv_cache_usage_max_ratio"] == pytest.approx(max(kv(s) for s in life))
        # The client samples whose second overlaps the request's life.
        lags = [client_lag(s) for s in (0.25 + k for k in range(56)) if at(s) >= started and at(s - 1) < ended]
        assert row["client_loop_lag_max_ms"] == max(lags)
        assert row["e2e_latency_ms"] in (800.0, 1500.0) and row["status"] == "ok"


def test_run_timeline_buckets(built) -> None:
    warehouse, requests = built
    rows = query(warehouse, "select * from run_timelines order by bucket_started_at")
    by_second = {r["seconds_since_start"]: r for r in rows}
    assert sum(r["requests_started"] for r in rows) == len(requests)
    assert sum(r["requests_completed"] for r in rows) == len(requests)
    assert by_second[5]["bucket_started_at"] == at(5)
    assert (by_second[5]["payload_file"], by_second[5]["concurrency"]) == (PAYLOAD, 1)
    assert (by_second[45]["payload_file"], by_second[45]["concurrency"]) == (PAYLOAD, 4)
    assert by_second[30]["payload_file"] is None and by_second[30]["concurrency"] is None  # between the cells
    assert by_second[30]["requests_started"] == 0
    assert by_second[41]["requests_started"] == 2  # every 0.5 s
    ended_41 = [r for r in requests if at(41) <= r["ended_at"] < at(42)]
    assert by_second[41]["output_tokens_per_s"] == COMPLETION_TOKENS * len(ended_41)
    assert by_second[30]["server_requests_waiting_mean"] == waiting(30.5)
    assert by_second[30]["kv_cache_usage_mean_ratio"] == pytest.approx(kv(30.5))
    assert by_second[45]["server_output_tokens_per_s"] == pytest.approx(12.0)
    assert by_second[47]["server_output_tokens_per_s"] == pytest.approx(7.0)  # the restart: 7 over the second
    assert by_second[45]["gpu_utilization_mean_percent"] == pytest.approx(mean([gpu(45.75, d) for d in (0, 1)]))
    assert by_second[45]["client_cpu_percent"] == client_cpu(45.25)
    assert by_second[45]["requests_in_flight_mean"] == client_in_flight(45.25)
    assert max(by_second) <= 52  # nothing after the experiment's last end


def test_endpoint_metrics_come_from_the_latest_fetch(built) -> None:
    warehouse, requests = built
    rows = {(r["metric"], r["stat"]): r for r in query(warehouse, "select * from endpoint_metrics")}
    assert set(rows) == {
        ("Invocations", "Sum"),
        ("ModelLatency", "Average"),
        ("ModelLatency", "SampleCount"),
        ("ModelLatency", "Maximum"),
    }
    for row in rows.values():
        assert row["fetched_at"] == at(600)
        assert row["count_periods"] == 2  # the period after the experiment's end is left out
        assert (row["first_period_started_at"], row["last_period_started_at"]) == (at(-30), at(30))
        assert row["count_client_requests"] == len(requests)
        assert row["client_e2e_mean_ms"] == pytest.approx(mean([r["e2e_latency_ms"] for r in requests]))
    assert rows["Invocations", "Sum"]["value_sum"] == 440.0
    assert rows["ModelLatency", "SampleCount"]["value_sum"] == 400.0
    assert rows["ModelLatency", "Average"]["value_sum"] is None
    assert rows["ModelLatency", "Average"]["value_mean"] == pytest.approx((2000 * 10 + 1000 * 30) / 40)
    assert rows["ModelLatency", "Maximum"]["value_max"] == 4000.0
    assert rows["ModelLatency", "Average"]["unit"] == "Microseconds"


def test_a_run_without_telemetry_builds_with_unknown_states(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_run(tmp_path, results, 5, datetime(2026, 1, 1, tzinfo=UTC), rows_per_cell=30)
    build(results)
    warehouse = warehouse_path(results)
    cells = query(warehouse, "select count(*) as n from cells")[0]["n"]
    states = query(
        warehouse,
        "select count(*) as n, sum(count_server_samples) as server, sum(count_client_samples) as client,"
        " count(is_client_saturated) as known, count(requests_waiting_mean) as waiting from server_states",
    )
    assert states == [{"n": cells, "server": 0, "client": 0, "known": 0, "waiting": 0}]
    assert query(
        warehouse, "select count(*) as n from recommendations where ineligible_reason = 'client_saturated'"
    ) == [{"n": 0}]
    # No sample, no per-request row: a run without telemetry adds no request-sized table.
    assert query(warehouse, "select count(*) as n from request_server_states") == [{"n": 0}]
    assert query(warehouse, "select count(*) as n from endpoint_metrics") == [{"n": 0}]
    assert query(warehouse, "select count(*) > 0 as some from run_timelines") == [{"some": True}]
