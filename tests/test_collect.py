"""`fmb collect` against the mock endpoint: timings, faults, rows, and bad input."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from textwrap import dedent

import duckdb
import pyarrow.dataset as ds
import pytest

from fmb.cli import cli
from fmb.collector.mock.process import mock_server
from fmb.collector.plan import requests_per_cell
from fmb.collector.schemas import REQUESTS, RUNS
from tests.conftest import MISTRAL_TOKENIZER

pytestmark = pytest.mark.slow  # servers in subprocesses, dbt builds or a real model


def make_config(
    tmp_path: Path,
    url: str,
    *,
    concurrency=(1, 4, 16),
    rounds=8,
    extra="",
    api="openai-chat",
    prompts=8,
    stream=True,
    timeout=120,
    warmup=0,
) -> Path:
    """A config over `prompts` synthetic prompts of 40-60 tokens, prepared into tmp_path/results."""
    text = dedent(
        f"""
        general: {{name: mock-bench, model_name: mock}}
        s3_read_data: {{source_data_files: ["synthetic:exact-lengths"]}}
        datasets:
          tokenizer: {MISTRAL_TOKENIZER}
          prompt_template_keys: [input]
          min_iters_per_combination: {rounds}
          max_iters_per_combination: {rounds}
          synthetic: {{prompts_per_filter: {prompts}}}
          filters:
          - {{language: en, min_length_in_tokens: 40, max_length_in_tokens: 60, payload_file: payload_en_40-60.jsonl}}
        inference_parameters:
          chat: {{max_tokens: 32, temperature: 0.1}}
        experiments:
        - name: mock-endpoint
          api: {api}
          endpoint_url: {url}/v1
          instance_type: local.cpu
          stream: {str(stream).lower()}
          request_timeout_s: {timeout}
          warmup_requests: {warmup}
          inference_spec: {{parameter_set: chat}}
          payload_files: [payload_en_40-60.jsonl]
          concurrency_levels: [{", ".join(str(c) for c in concurrency)}]
        """
    ) + dedent(extra)
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    return path


def run_cli(cli_runner, *args: str):
    return cli_runner.invoke(cli, list(args), terminal_width=200)


def prepare_and_collect(cli_runner, config: Path, results: Path):
    prepared = run_cli(cli_runner, "prepare", str(config), "--results", str(results))
    assert prepared.exit_code == 0, prepared.output
    return run_cli(cli_runner, "collect", str(config), "--results", str(results), "--quiet")


def request_rows(results: Path) -> list[dict]:
    return ds.dataset(results / "raw" / "requests", format="parquet", partitioning="hive").to_table().to_pylist()


def run_rows(results: Path) -> list[dict]:
    return ds.dataset(results / "raw" / "runs", format="parquet", partitioning="hive").to_table().to_pylist()


def test_timings_match_the_mock_at_every_concurrency(tmp_path: Path, cli_runner) -> None:
    with mock_server(ttft_ms=40, itl_ms=5, output_tokens=32) as url:
        config = make_config(tmp_path, url, warmup=16)
        result = prepare_and_collect(cli_runner, config, tmp_path / "results")
    assert result.exit_code == 0, result.output
    rows = request_rows(tmp_path / "results")
    measured = [r for r in rows if not r["is_warmup"]]
    planned = sum(requests_per_cell(8, c, 8, 8) for c in (1, 4, 16))
    assert len(measured) == planned == 8 * (1 + 4 + 16)
    assert len([r for r in rows if r["is_warmup"]]) == 3 * 16
    assert all(r["status"] == "ok" for r in rows)
    for c in (1, 4, 16):
        cell = [r for r in measured if r["concurrency"] == c]
        assert len(cell) == 8 * c
        ttft = statistics.median(r["ttft_ms"] for r in cell)
        gaps = statistics.median(g for r in cell for g in r["chunk_gaps_ms"])
        assert abs(ttft - 40) <= 3, f"c={c}: median TTFT {ttft:.2f} ms"
        assert abs(gaps - 5) <= 1, f"c={c}: median chunk gap {gaps:.2f} ms"
        assert all(r["prompt_tokens_server"] is not None for r in cell)  # both counts from the server
        assert {r["completion_tokens_server"] for r in cell} == {32}
        assert all(r["completion_tokens_client"] > 0 for r in cell)
        assert all(r["content_chunks"] == 32 and len(r["chunk_gaps_ms"]) == 31 for r in cell)
        assert all(r["ttft_ms"] <= r["ttlt_ms"] <= r["e2e_latency_ms"] for r in cell)
        assert sorted(r["request_index"] for r in cell) == list(range(16, 16 + 8 * c))  # after 16 warm-ups
        assert {r["worker"] for r in cell} == set(range(c))
    (run,) = run_rows(tmp_path / "results")
    assert run["status"] == "completed" and run["ended_at"] is not None


def test_concurrency_is_continuous_not_in_waves(tmp_path: Path, cli_runner) -> None:
    """With uneven response times a new request starts as soon as one ends: starts interleave."""
    with mock_server(ttft_ms=5, itl_ms=2, output_tokens=10, stall_rate=0.25, stall_s=0.3, seed=3) as url:
        config = make_config(tmp_path, url, concurrency=(4,), rounds=6)
        result = prepare_and_collect(cli_runner, config, tmp_path / "results")
    assert result.exit_code == 0, result.output
    rows = sorted(request_rows(tmp_path / "results"), key=lambda r: r["started_at"])
    in_flight_at_start = []
    for row in rows:
        in_flight_at_start.append(sum(1 for o in rows if o["started_at"] <= row["started_at"] < o["ended_at"]))
    # Never more than 4 in flight, and while a stalled request runs the others keep going.
    assert max(in_flight_at_start) <= 4
    stalled = [r for r in rows if r["e2e_latency_ms"] > 250]
    assert stalled
    # In waves nothing would start while a request of the wave stalls.
    started_during = [
        sum(1 for r in rows if slow["started_at"] < r["started_at"] < slow["ended_at"]) for slow in stalled
    ]
    assert max(started_during) >= 3, "other slots must keep sending while one request stalls"


def test_faults_are_rows_and_the_run_goes_on(tmp_path: Path, cli_runner) -> None:
    with mock_server(ttft_ms=10, itl_ms=2, output_tokens=16, error_rate=0.2, stall_rate=0.1, stall_s=5, seed=11) as url:
        config = make_config(tmp_path, url, concurrency=(1, 4), rounds=10, timeout=1)
        result = prepare_and_collect(cli_runner, config, tmp_path / "results")
    assert result.exit_code == 0, result.output
    rows = request_rows(tmp_path / "results")
    assert len(rows) == 10 * 1 + 10 * 4
    errors = [r for r in rows if r["status"] == "error"]
    timeouts = [r for r in rows if r["status"] == "timeout"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert errors and timeouts and ok
    assert {r["http_status"] for r in errors} == {500} and {r["error_type"] for r in errors} == {"http_500"}
    assert all("injected fault" in r["error_message"] for r in errors)
    for r in timeouts:
        assert r["error_type"] == "TimeoutError"
        assert 990 <= r["e2e_latency_ms"] < 1500  # the 1 s timeout (the clock starts as the body is sent)
        assert r["completion_tokens_server"] is None and r["completion_tokens_client"] is None
    for r in ok:
        assert r["completion_tokens_server"] == 16 and r["ttft_ms"] is not None and r["error_type"] is None
    (run,) = run_rows(tmp_path / "results")
    assert run["status"] == "completed"


def test_throttling_is_its_own_status(tmp_path: Path, cli_runner) -> None:
    with mock_server(ttft_ms=5, itl_ms=1, output_tokens=4, throttle_rate=0.5, seed=2) as url:
        config = make_config(tmp_path, url, concurrency=(2,), rounds=10)
        result = prepare_and_collect(cli_runner, config, tmp_path / "results")
    assert result.exit_code == 0, result.output
    statuses = {r["status"] for r in request_rows(tmp_path / "results")}
    assert statuses == {"ok", "throttled"}


@pytest.mark.parametrize("api", ["openai-chat", "openai-completions"])
def test_non_streaming_requests(tmp_path: Path, cli_runner, api: str) -> None:
    with mock_server(ttft_ms=20, itl_ms=2, output_tokens=8) as url:
        config = make_config(tmp_path, url, concurrency=(2,), rounds=3, stream=False, api=api)
        result = prepare_and_collect(cli_runner, config, tmp_path / "results")
    assert result.exit_code == 0, result.output
    rows = request_rows(tmp_path / "results")
    assert len(rows) == 6
    for r in rows:
        assert r["status"] == "ok" and r["stream"] is False
        assert r["ttft_ms"] is None and r["chunk_gaps_ms"] is None
        assert r["e2e_latency_ms"] >= 20 + 7 * 2 - 1
        assert r["completion_text"].strip().startswith("w0")


def test_streaming_completions_api(tmp_path: Path, cli_runner) -> None:
    with mock_server(ttft_ms=20, itl_ms=3, output_tokens=8) as url:
        config = make_config(tmp_path, url, concurrency=(1,), rounds=3, api="openai-completions")
        result = prepare_and_collect(cli_runner, config, tmp_path / "results")
    assert result.exit_code == 0, result.output
    rows = request_rows(tmp_path / "results")
    assert [r["content_chunks"] for r in rows] == [8, 8, 8]
    assert all(r["completion_text"] == "".join(f" w{i}" for i in range(8)) for r in rows)


def test_rows_are_queryable_with_duckdb_and_match_the_schema(tmp_path: Path, cli_runner) -> None:
    with mock_server(ttft_ms=5, itl_ms=1, output_tokens=4) as url:
        config = make_config(tmp_path, url, concurrency=(1,), rounds=2)
        result = prepare_and_collect(cli_runner, config, tmp_path / "results")
    assert result.exit_code == 0
    raw = tmp_path / "results" / "raw"
    con = duckdb.connect()
    n, experiment = con.execute(
        f"select count(*), any_value(experiment) from read_parquet('{raw}/requests/*/*/*.parquet', hive_partitioning=true)"
    ).fetchone()
    assert (n, experiment) == (2, "mock-endpoint")
    files = list((raw / "requests").rglob("*.parquet"))
    assert files and all(f.name.startswith("part-") for f in files)
    assert ds.dataset(files[0]).schema.remove_metadata().equals(REQUESTS.remove_metadata())
    runs = ds.dataset(raw / "runs", partitioning="hive").to_table()
    assert set(RUNS.names) <= set(runs.column_names)
    experiments = duckdb.sql(f"select * from read_parquet('{raw}/experiments/*/*.parquet')").fetchall()
    assert len(experiments) == 1


def test_the_run_records_the_client_host(tmp_path: Path, cli_runner, monkeypatch) -> None:
    """CPU, cores, memory, OS, Python, fmb version and load before and after; a busy client is warned about."""
    import os
    import platform

    from fmb import __version__

    # A load average far above any core count: the client counts as busy and collect says so.
    monkeypatch.setattr(os, "getloadavg", lambda: (512.0, 0.0, 0.0))
    with mock_server(ttft_ms=5, itl_ms=1, output_tokens=4) as url:
        config = make_config(tmp_path, url, concurrency=(1,), rounds=2)
        result = prepare_and_collect(cli_runner, config, tmp_path / "results")
    assert result.exit_code == 0, result.output
    (run,) = run_rows(tmp_path / "results")
    assert run["client_logical_cores"] == os.cpu_count() and run["client_logical_cores"] > 0
    assert run["client_memory_bytes"] > 0
    assert run["client_cpu_model"] and run["client_os"] == platform.platform()
    assert run["python_version"] == platform.python_version() and run["fmb_version"] == __version__
    assert run["client_load_1m_before"] == run["client_load_1m_after"] == 512.0
    assert run["client_process_cpu_s"] >= 0
    assert run["run_group"] == run["run_id"] and run["repeat_index"] == 1
    assert "warning: the client machine was busy" in result.output
    assert "1-minute load average 512.00 before the run" in result.output


def test_an_idle_client_is_not_warned_about(tmp_path: Path, cli_runner, monkeypatch) -> None:
    import os

    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    with mock_server(ttft_ms=5, itl_ms=1, output_tokens=4) as url:
        config = make_config(tmp_path, url, concurrency=(1,), rounds=2)
        result = prepare_and_collect(cli_runner, config, tmp_path / "results")
    assert result.exit_code == 0, result.output
    (run,) = run_rows(tmp_path / "results")
    assert run["client_load_1m_before"] == run["client_load_1m_after"] == 0.0
    # The collector's own CPU share may still flag a slow machine; the load average alone does not.
    assert "load average" not in result.output


def test_run_repeat_collects_one_run_group_and_reports_its_spread(tmp_path: Path, cli_runner) -> None:
    from fmb.warehouse.build import warehouse_path
    from tests.rawdata import query

    results = tmp_path / "results"
    with mock_server(ttft_ms=5, itl_ms=1, output_tokens=4) as url:
        config = make_config(
            tmp_path,
            url,
            concurrency=(1, 2),
            rounds=4,
            extra="run_steps: {prepare: true, collect: true, build: true, report: true}\n",
        )
        result = run_cli(cli_runner, "run", str(config), "--results", str(results), "--quiet", "--repeat", "2")
    assert result.exit_code == 0, result.output
    assert "Run 2 of 2" in result.output
    runs = sorted(run_rows(results), key=lambda r: r["repeat_index"])
    assert [r["repeat_index"] for r in runs] == [1, 2]
    assert {r["run_group"] for r in runs} == {runs[0]["run_id"]} and runs[0]["run_id"] != runs[1]["run_id"]
    spreads = query(warehouse_path(results), "select * from cell_spreads order by concurrency")
    assert [(s["run_group"], s["concurrency"], s["count_runs"]) for s in spreads] == [
        (runs[0]["run_id"], 1, 2),
        (runs[0]["run_id"], 2, 2),
    ]
    assert all(
        s["min_e2e_latency_p95_ms"] <= s["mean_e2e_latency_p95_ms"] <= s["max_e2e_latency_p95_ms"] for s in spreads
    )
    # The second run against the first: the same group, so every change is within its spread.
    compared = query(warehouse_path(results), "select * from run_comparisons where run_id = ?", [runs[1]["run_id"]])
    assert len(compared) == 2 and all(c["is_change_noise"] is True for c in compared)
    report = next((results / "reports").rglob("report.md")).read_text(encoding="utf-8")
    assert "## Spread over the run group" in report and "This run is one of 2 runs of group" in report
    assert "| Within the noise |" in report and report.count("| yes |") == 2
    assert "| Client |" in report and "| Client load (1 min) |" in report


def test_unreachable_endpoint_is_one_paragraph_and_no_run(tmp_path: Path, cli_runner) -> None:
    with mock_server() as url:
        config = make_config(tmp_path, url, concurrency=(1,), rounds=1)
        assert run_cli(cli_runner, "prepare", str(config), "--results", str(tmp_path / "results")).exit_code == 0
    # The server is gone now.
    result = run_cli(cli_runner, "collect", str(config), "--results", str(tmp_path / "results"), "--quiet")
    assert result.exit_code == 1
    assert "cannot reach" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "results" / "raw" / "runs").exists()


def test_missing_payload_file(tmp_path: Path, cli_runner) -> None:
    config = make_config(tmp_path, "http://127.0.0.1:9", concurrency=(1,), rounds=1)
    result = run_cli(cli_runner, "collect", str(config), "--results", str(tmp_path / "results"), "--quiet")
    assert result.exit_code == 1
    assert "payload file(s) not found" in result.output and "payload_en_40-60.jsonl" in result.output
    assert "fmb prepare" in result.output


def test_bad_payload_file(tmp_path: Path, cli_runner) -> None:
    config = make_config(tmp_path, "http://127.0.0.1:9", concurrency=(1,), rounds=1)
    payloads = tmp_path / "results" / "payloads" / "mock-bench"
    payloads.mkdir(parents=True)
    (payloads / "payload_en_40-60.jsonl").write_text('{"prompt": "no inputs key"}\n', encoding="utf-8")
    result = run_cli(cli_runner, "collect", str(config), "--results", str(tmp_path / "results"), "--quiet")
    assert result.exit_code == 1
    assert "line 1 has no text under 'inputs'" in result.output


def test_secrets_never_reach_parquet(tmp_path: Path, cli_runner, monkeypatch) -> None:
    secret = "sk-fmbtestsecret0123456789"
    monkeypatch.setenv("FMB_TEST_KEY", secret)
    extra = """
          api_key_env: FMB_TEST_KEY
          headers: {x-custom-authentication-token: hunter2-token-value}
        """
    with mock_server(ttft_ms=5, itl_ms=1, output_tokens=4, error_rate=0.5) as url:
        config = make_config(tmp_path, url, concurrency=(1,), rounds=4)
        text = config.read_text().replace(
            "  payload_files:", dedent(extra).strip("\n").replace("\n", "\n") + "\n  payload_files:"
        )
        text = text.replace("api_key_env", "  api_key_env").replace("headers:", "  headers:")
        config.write_text(text)
        result = prepare_and_collect(cli_runner, config, tmp_path / "results")
    assert result.exit_code == 0, result.output
    for path in (tmp_path / "results").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data, path
            assert b"hunter2-token-value" not in data, path
    (run,) = run_rows(tmp_path / "results")
    assert json.loads(run["config_json"])["experiments"][0]["headers"]["x-custom-authentication-token"] == "***"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_keeps_the_rows_already_measured(tmp_path: Path) -> None:
    with mock_server(ttft_ms=50, itl_ms=10, output_tokens=10) as url:
        config = make_config(tmp_path, url, concurrency=(2,), rounds=200)
        env = os.environ | {"PYTHONUNBUFFERED": "1"}
        results = tmp_path / "results"
        subprocess.run(
            [sys.executable, "-m", "fmb", "prepare", str(config), "--results", str(results)],
            check=True,
            capture_output=True,
            env=env,
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "fmb", "collect", str(config), "--results", str(results), "--quiet"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 60
        # Rows are on disk (in the journal, until the cell ends) as soon as requests finish.
        while time.monotonic() < deadline and not list((results / "raw" / "requests").rglob(".journal-*.jsonl")):
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out.decode()
    assert b"Traceback" not in out
    rows = request_rows(results)
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) >= 10
    assert len(rows) < 400
    assert {r["status"] for r in rows} <= {"ok", "cancelled"}
    (run,) = run_rows(results)
    assert run["status"] == "interrupted" and run["ended_at"] is not None
