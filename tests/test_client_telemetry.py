"""Client telemetry: the collector's CPU, event-loop lag and requests in flight, sampled for real while
`fmb collect` sends requests to the mock server, once with a client starved of CPU on purpose."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from textwrap import dedent

import pyarrow.dataset as ds
import pytest

from fmb.collector.client_telemetry import ClientLoad, ClientSampler
from fmb.collector.schemas import CLIENT_METRICS
from fmb.config import load_config
from fmb.endpoints import Endpoint
from fmb.paths import ResultsLayout
from tests.conftest import MISTRAL_TOKENIZER


def rows(directory: Path) -> list[dict]:
    parts = sorted(directory.glob("*.parquet"))
    table = ds.dataset(parts, format="parquet", schema=CLIENT_METRICS).to_table() if parts else None
    return sorted(table.to_pylist(), key=lambda r: r["sampled_at"]) if table is not None else []


def test_client_load_counts_requests_in_flight_per_interval() -> None:
    load = ClientLoad()
    for _ in range(3):
        load.start()
    load.end()
    assert load.take() == (2, 3, 3, 1)
    # A new interval starts from what is in flight now.
    load.end()
    assert load.take() == (1, 2, 0, 1)
    assert load.take() == (1, 1, 0, 0)


def test_the_sampler_measures_a_stalled_event_loop_and_the_cpu_it_burned(tmp_path: Path) -> None:
    directory = tmp_path / "client_metrics"

    async def main() -> None:
        sampler = ClientSampler(directory, "r1", 0.1)
        async with sampler.sampling() as load:
            load.start()
            await asyncio.sleep(0.25)  # an idle loop: timers fire on time
            end = time.process_time() + 0.3
            while time.process_time() < end:  # the loop is blocked and burns CPU for 0.3 s
                pass
            load.end()
            await asyncio.sleep(0.15)
        assert sampler.rows_written == len(rows(directory))

    asyncio.run(main())
    samples = rows(directory)
    assert samples and {s["run_id"] for s in samples} == {"r1"}
    idle, *_ = samples
    assert idle["loop_lag_max_ms"] < 100 and idle["cpu_percent"] < 60
    stalled = max(samples, key=lambda s: s["loop_lag_max_ms"])
    assert stalled["loop_lag_max_ms"] >= 250
    # The 0.3 s of CPU time burned is in the stalled interval (however busy the machine, it took at least as long).
    assert stalled["interval_s"] >= 0.3
    assert stalled["cpu_percent"] * stalled["interval_s"] / 100 >= 0.28
    assert sum(s["requests_started"] for s in samples) == sum(s["requests_ended"] for s in samples) == 1
    assert max(s["in_flight_max"] for s in samples) == 1 and samples[-1]["in_flight"] == 0


def _config(tmp_path: Path, url: str, telemetry: str) -> Path:
    text = dedent(
        f"""
        general: {{name: client-telemetry, model_name: mock}}
        s3_read_data: {{source_data_files: ["synthetic:exact-lengths"]}}
        datasets:
          tokenizer: {MISTRAL_TOKENIZER}
          prompt_template_keys: [input]
          min_iters_per_combination: 12
          max_iters_per_combination: 12
          synthetic: {{prompts_per_filter: 6}}
          filters:
          - {{language: en, min_length_in_tokens: 40, max_length_in_tokens: 60, payload_file: payload_en_40-60.jsonl}}
        inference_parameters:
          chat: {{max_tokens: 32, temperature: 0.1}}
        experiments:
        - name: mock-endpoint
          api: openai-chat
          endpoint_url: {url}/v1
          instance_type: local.cpu
          stream: true
          warmup_requests: 2
          inference_spec: {{parameter_set: chat}}
          payload_files: [payload_en_40-60.jsonl]
          concurrency_levels: [1, 3]
        """
    )
    path = tmp_path / "config.yml"
    path.write_text(text + dedent(telemetry), encoding="utf-8")
    return path


@contextmanager
def starved_client() -> Iterator[None]:
    """A thread in the collector's own process that holds the GIL about 100 ms at a time: sorting a
    list of integers is one C call that never lets go of it, so the event loop waits."""
    values = [random.random() for _ in range(400_000)]
    stop = threading.Event()

    def hog() -> None:
        while not stop.is_set():
            sorted(values)

    thread = threading.Thread(target=hog, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _collect(tmp_path: Path, url: str, telemetry: str, name: str):
    from click.testing import CliRunner

    from fmb.cli import cli
    from fmb.collector.collect import collect

    results = tmp_path / "results"
    (tmp_path / name).mkdir()
    config = _config(tmp_path / name, url, telemetry)
    prepared = CliRunner().invoke(cli, ["prepare", str(config), "--results", str(results)])
    assert prepared.exit_code == 0, prepared.output
    loaded = load_config(config, results_dir=results)
    return collect(loaded, ResultsLayout(results), {"mock-endpoint": Endpoint(f"{url}/v1")}, quiet=True)


@pytest.mark.slow
def test_collect_samples_the_client_and_a_starved_client_shows_it(tmp_path: Path) -> None:
    from fmb.collector.mock.process import mock_server

    layout = ResultsLayout(tmp_path / "results")
    sampled = "telemetry: {client_interval_s: 0.2, server_interval_s: 0.2}\n"
    # The server runs 2 requests at once and queues the others, as a batch of 2 would.
    with mock_server(ttft_ms=30, itl_ms=4, output_tokens=32, max_running=2) as url:
        off = _collect(tmp_path, url, "telemetry: {client: false}\n", "off")
        calm = _collect(tmp_path, url, sampled, "calm")
        with starved_client():
            starved = _collect(tmp_path, url, sampled, "starved")
    assert off.status == calm.status == starved.status == "completed"
    assert rows(layout.client_metrics_dir(off.run_id)) == []

    calm_rows = rows(layout.client_metrics_dir(calm.run_id))
    sent = ds.dataset(layout.raw / "requests", format="parquet", partitioning="hive").to_table().to_pylist()
    sent = [r for r in sent if r["run_id"] == calm.run_id]
    assert len(sent) > 2 * 12 and {r["is_warmup"] for r in sent} == {True, False}
    # Every request of the run, warm-ups included, started and ended in a sampled interval.
    assert sum(r["requests_started"] for r in calm_rows) == sum(r["requests_ended"] for r in calm_rows) == len(sent)
    assert max(r["in_flight_max"] for r in calm_rows) == 3
    assert all(0 <= r["in_flight"] <= r["in_flight_max"] <= 3 for r in calm_rows)
    assert calm_rows[-1]["in_flight"] == 0
    assert all(r["interval_s"] == pytest.approx(0.2, abs=0.1) for r in calm_rows[:-1])
    lags = sorted(r["loop_lag_max_ms"] for r in calm_rows)
    assert lags[int(0.9 * (len(lags) - 1))] < 50  # a calm loop (a GC pause may stall one interval)

    starved_rows = rows(layout.client_metrics_dir(starved.run_id))
    assert max(r["loop_lag_max_ms"] for r in starved_rows) >= 50

    def cpu(samples: list[dict]) -> float:
        return sum(r["cpu_percent"] * r["interval_s"] for r in samples) / sum(r["interval_s"] for r in samples)

    assert cpu(starved_rows) > cpu(calm_rows) + 20

    # The warehouse flags every cell of the starved run, none of the calm one, and ranks no starved cell.
    from fmb.reports.render import render_report
    from fmb.warehouse.build import build, warehouse_path
    from tests.rawdata import query

    build(layout.root)
    warehouse = warehouse_path(layout.root)
    states = query(warehouse, "select * from server_states order by run_id, concurrency")
    by_run = {run: [r for r in states if r["run_id"] == run] for run in (off.run_id, calm.run_id, starved.run_id)}
    assert [r["is_client_saturated"] for r in by_run[off.run_id]] == [None, None]  # not sampled: unknown
    assert [r["is_client_saturated"] for r in by_run[calm.run_id]] == [False, False]
    assert [r["is_client_saturated"] for r in by_run[starved.run_id]] == [True, True]
    assert {r["client_saturation_reason"] for r in by_run[starved.run_id]} <= {"cpu", "loop_lag"}
    chosen = query(
        warehouse,
        "select run_id, is_eligible, ineligible_reason from recommendations where run_id in (?, ?) order by run_id",
        [calm.run_id, starved.run_id],
    )
    assert {(r["run_id"], r["ineligible_reason"]) for r in chosen if not r["is_eligible"]} >= {
        (starved.run_id, "client_saturated")
    }
    assert not [r for r in chosen if r["run_id"] == calm.run_id and r["ineligible_reason"] == "client_saturated"]

    # The server's own view (the mock's /metrics follows its real queue): at c=1 nothing waits; at c=3
    # two run and one waits, as the client sent 3.
    c1, c3 = by_run[calm.run_id]
    assert c1["count_server_samples"] > 0 and c3["count_server_samples"] > 0
    assert c1["requests_waiting_max"] == 0 and c1["requests_running_max"] == 1
    assert c3["requests_running_max"] == 2 and c3["requests_waiting_max"] >= 1
    assert 0.5 < c3["requests_waiting_mean"] <= 1 and 2 < c3["concurrency_sent_mean"] <= 3
    assert c3["server_to_client_tokens_ratio"] == pytest.approx(1, abs=0.2)

    report = render_report(warehouse, tmp_path / "report", starved.run_id, layout.root)
    text = report.path.read_text()
    assert "**The client was saturated in 2 cells**" in text
    assert "## Server and client telemetry" in text and "(client saturated)" in text
    assert "timeline_mock-endpoint.png" in text and (tmp_path / "report" / "timeline_mock-endpoint.png").is_file()
    calm_report = render_report(warehouse, tmp_path / "calm-report", calm.run_id, layout.root).path.read_text()
    assert "The client was saturated in" not in calm_report and "## Server and client telemetry" in calm_report
