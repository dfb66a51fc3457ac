"""FMBench's EC2 configs, unchanged, deployed into a real Docker engine and benchmarked.

The images are impersonations built here (tests/docker_env.py): fmb's mock server
behind the command line and file layout of vLLM, DJL Serving and Ollama, tagged with the
image names the configs use. fmb's EC2 deployer runs its real code path against the
engine: it must pass the arguments, mount the files and publish the ports those servers
need, or the container fails as the real one would. Every test removes what it started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fmb.cli import cli
from fmb.collector.mock.process import mock_server
from tests import docker_env
from tests.conftest import SHARED_FIXTURES
from tests.test_fmbench_fixtures import write_read_dir
from tests.test_secrets import free_port

pytestmark = pytest.mark.slow  # a Docker engine, image builds, dbt builds

VLLM_IMAGE = "vllm/vllm-openai:v0.7.1"
DJL_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.29.0-lmi11.0.0-cu124"
HF_TOKEN = "hf_TESTTOKENabcdefghijklmnop"
DEEPSEEK = {
    "model_id": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
    "instance_type": "g6e.xlarge",
    "cli_params": "--max-model-len 8192",
}


@pytest.fixture(scope="module")
def fmbench_fixtures_module() -> Path:
    path = SHARED_FIXTURES / "fmbench"
    if not path.is_dir():
        pytest.skip(f"FMBench fixture configs not found at {path} (they sit beside the checkout in CI)")
    return path


@pytest.fixture(scope="module")
def read_dir(tmp_path_factory: pytest.TempPathFactory, fmbench_fixtures_module: Path) -> Path:
    return write_read_dir(tmp_path_factory.mktemp("fmbench-read"), fmbench_fixtures_module)


@pytest.fixture(scope="module")
def engine() -> Any:
    client = docker_env.docker_client()
    docker_env.ensure_base_image(client)
    return client


@pytest.fixture
def hf_token(monkeypatch) -> str:
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    return HF_TOKEN


@pytest.fixture
def no_leftovers(engine: Any, tmp_path: Path) -> Iterator[None]:
    """After the test, no container fmb started for this test's results may remain (any is removed, and fails it)."""
    yield
    ours = str(tmp_path.resolve())
    left = [c for c in docker_env.fmb_containers(engine) if (c.labels or {}).get("fmb.results", "").startswith(ours)]
    for container in left:
        container.remove(force=True)
    assert not left, f"containers left behind: {[c.name for c in left]}"


def assignments(read_dir: Path, **values: str) -> list[str]:
    out = ["-A", f"read_tmpdir={read_dir}"]
    for key, value in values.items():
        out += ["-A", f"{key}={value}"]
    return out


def warehouse(results: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(results / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def files_containing(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_fmbench_vllm_sample_runs_end_to_end_in_docker(
    engine, fmbench_fixtures_module, read_dir, tmp_path, cli_runner, hf_token, no_leftovers
) -> None:
    config = fmbench_fixtures_module / "configs" / "deepseek" / "config-deepseek-r1-vllm-longbench.yml"
    results = tmp_path / "results"
    # The sample also runs FMBench's accuracy step: its Bedrock judges answer from a mock runtime.
    judges = {
        "bedrock_runtime_endpoint_url": "",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "region": "us-east-1",
    }
    with docker_env.impersonating_image(engine, "vllm", VLLM_IMAGE), mock_server(reply="judge") as runtime:
        result = cli_runner.invoke(
            cli,
            [
                "run",
                str(config),
                "--results",
                str(results),
                "--quiet",
                "--host-port",
                "auto",
                *assignments(read_dir, **DEEPSEEK, **(judges | {"bedrock_runtime_endpoint_url": runtime})),
            ],
            terminal_width=200,
        )
    assert result.exit_code == 0, result.output
    assert warehouse(results, "select count(*) from judge_agreement") == [(3,)]  # FMBench's three judges
    cells = warehouse(results, "select payload_file, concurrency, count_requests, count_successful_requests from cells")
    assert len(cells) == 5 and all(n > 0 and ok == n for _, _, n, ok in cells)
    assert (results / "reports").glob("*/report.md")
    # The container got FMBench's command line and the token, and its log was kept when it was removed.
    (log,) = (results / "deployments" / "logs").rglob("*.log")
    text = log.read_text()
    assert "'--model', 'deepseek-ai/DeepSeek-R1-Distill-Llama-8B', '--max-model-len', '8192'" in text
    assert "HF_TOKEN is set" in text
    assert files_containing(results, HF_TOKEN) == []
    assert HF_TOKEN not in result.output
    registry = json.loads(next((results / "deployments").glob("*.json")).read_text())
    assert registry["deployments"] == []


def test_djl_sample_deploy_collect_cleanup_touches_only_what_fmb_started(
    engine, fmbench_fixtures_module, read_dir, tmp_path, cli_runner, no_leftovers
) -> None:
    config = fmbench_fixtures_module / "configs" / "llama3" / "8b" / "config-ec2-llama3-8b.yml"
    results = tmp_path / "results"
    args = ["--results", str(results), *assignments(read_dir, region="us-east-1")]
    with docker_env.impersonating_image(engine, "djl", DJL_IMAGE):
        # A container fmb did not start, labelled like one of its own: it must survive cleanup.
        bystander = engine.containers.run(
            DJL_IMAGE,
            detach=True,
            labels={
                "fmb.benchmark": "llama3-8b-g5.2xl-djl-ec2",
                "fmb.experiment": "llama3-8b-instruct",
                "fmb.deployment": "not-fmbs",
            },
            entrypoint=["sleep", "300"],
        )
        try:
            result = cli_runner.invoke(cli, ["deploy", str(config), "--host-port", "auto", *args], terminal_width=200)
            assert result.exit_code == 0, result.output
            ours = [
                c for c in docker_env.fmb_containers(engine, experiment="llama3-8b-instruct") if c.id != bystander.id
            ]
            assert len(ours) == 1
            labels = ours[0].labels
            assert labels["fmb.benchmark"] == "llama3-8b-g5.2xl-djl-ec2" and labels["fmb.copy"] == "1"
            assert labels["fmb.results"] == str(results.resolve())
            inspect = ours[0].attrs["HostConfig"]
            assert inspect["ShmSize"] == 12 * 1024**3 and ours[0].attrs["Config"]["User"] == "djl"
            assert inspect["RestartPolicy"]["Name"] == "on-failure"

            result = cli_runner.invoke(cli, ["prepare", str(config), *args])
            assert result.exit_code == 0, result.output
            result = cli_runner.invoke(cli, ["collect", str(config), "--quiet", *args], terminal_width=200)
            assert result.exit_code == 0, result.output
            result = cli_runner.invoke(cli, ["cleanup", str(config), *args], terminal_width=200)
            assert result.exit_code == 0, result.output
            assert "removed" in result.output
            bystander.reload()
            assert bystander.status == "running"
        finally:
            bystander.remove(force=True)
    total, ok = (
        duckdb.connect()
        .execute(  # the rows are in Parquet, whatever the warehouse says
            "select count(*), count(*) filter (where status = 'ok') "
            f"from read_parquet('{results}/raw/requests/*/*/*.parquet')"
        )
        .fetchone()
    )
    assert total > 0 and ok == total
    (log,) = (results / "deployments" / "logs").rglob("*.log")
    assert "option.rolling_batch=lmi-dist" in log.read_text()  # the experiment's serving.properties, as DJL read it


def test_model_copies_spread_requests_and_each_row_names_its_copy(
    engine, fmbench_fixtures_module, read_dir, tmp_path, cli_runner, no_leftovers
) -> None:
    source = fmbench_fixtures_module / "configs" / "llama3" / "8b" / "config-ec2-llama3-8b.yml"
    config = tmp_path / "two-copies.yml"
    text = source.read_text().replace("model_copies: max", "model_copies: 2")
    config.write_text(text)
    results = tmp_path / "results"
    with docker_env.impersonating_image(engine, "djl", DJL_IMAGE):
        result = cli_runner.invoke(
            cli,
            [
                "run",
                str(config),
                "--results",
                str(results),
                "--quiet",
                "--host-port",
                "auto",
                *assignments(read_dir, region="us-east-1"),
            ],
            terminal_width=200,
        )
    assert result.exit_code == 0, result.output
    per_copy = warehouse(
        results, "select model_copy, sum(count_requests) from latency_by_copy group by model_copy order by model_copy"
    )
    assert [copy for copy, _ in per_copy] == [1, 2]
    assert all(n > 0 for _, n in per_copy)
    nulls = warehouse(results, "select count(*) from int_requests_classified where model_copy is null")
    assert nulls == [(0,)]
    assert len(list((results / "deployments" / "logs").rglob("*.log"))) == 2


def test_a_container_that_cannot_load_its_model_fails_the_deploy_with_its_log(
    engine, fmbench_fixtures_module, read_dir, tmp_path, cli_runner, no_leftovers
) -> None:
    config = fmbench_fixtures_module / "configs" / "deepseek" / "config-deepseek-r1-vllm-longbench.yml"
    results = tmp_path / "results"
    with docker_env.impersonating_image(engine, "vllm", VLLM_IMAGE):
        result = cli_runner.invoke(
            cli,
            [
                "deploy",
                str(config),
                "--results",
                str(results),
                "--host-port",
                "auto",
                *assignments(read_dir, **(DEEPSEEK | {"model_id": "org/fail-to-load-8B"})),
            ],
            terminal_width=200,
        )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "exited (code 3) before it answered" in result.output
    assert "CUDA out of memory" in result.output  # the end of the container's log
    (log,) = (results / "deployments" / "logs").rglob("*.log")
    assert "CUDA out of memory" in log.read_text()


def test_fmbench_djl_sample_runs_end_to_end_in_docker(
    engine, fmbench_fixtures_module, read_dir, tmp_path, cli_runner, no_leftovers
) -> None:
    config = fmbench_fixtures_module / "configs" / "llama3" / "8b" / "config-ec2-llama3-8b.yml"
    results = tmp_path / "results"
    with docker_env.impersonating_image(engine, "djl", DJL_IMAGE):
        result = cli_runner.invoke(
            cli,
            [
                "run",
                str(config),
                "--results",
                str(results),
                "--quiet",
                "--host-port",
                "auto",
                *assignments(read_dir, region="us-east-1"),
            ],
            terminal_width=200,
        )
    assert result.exit_code == 0, result.output
    cells = warehouse(results, "select count_requests, count_successful_requests from cells")
    assert len(cells) == 5 * 6 and all(n > 0 and ok == n for n, ok in cells)
    assert next((results / "reports").glob("*/report.md")).is_file()


def test_ollama_container_pulls_the_model_before_it_is_ready(
    engine, fmbench_fixtures_module, read_dir, tmp_path, cli_runner, no_leftovers
) -> None:
    """FMBench's Ollama sample brings its endpoint; deployed by fmb, Ollama's container pulls model_id first."""
    source = (
        fmbench_fixtures_module / "configs" / "llama3.1" / "8b" / "config-ec2-llama3-1-8b-g6e-2xlarge-byoe-ollama.yml"
    )
    text = source.read_text().replace("deploy: no", "deploy: yes")
    # The sample asks for a privileged container; the nested engine of the test machines refuses those.
    text = text.replace("privileged_mode: yes", "privileged_mode: no")
    for step in ("1_generate_data.ipynb", "2_deploy_model.ipynb", "5_cleanup.ipynb"):
        text = text.replace(f"{step}: no", f"{step}: yes")
    config = tmp_path / "ollama.yml"
    config.write_text(text)
    results = tmp_path / "results"
    with docker_env.impersonating_image(engine, "ollama", "ollama/ollama:latest"):
        result = cli_runner.invoke(
            cli,
            ["run", str(config), "--results", str(results), "--quiet", "--host-port", "auto", *assignments(read_dir)],
            terminal_width=200,
        )
    assert result.exit_code == 0, result.output
    cells = warehouse(results, "select count_requests, count_successful_requests from cells")
    assert cells and all(n > 0 and ok == n for n, ok in cells)
    (log,) = (results / "deployments" / "logs").rglob("*.log")
    assert "ollama: pulled llama3.1:8b" in log.read_text()  # the model the requests name


def test_sigterm_during_fmb_run_removes_the_containers(
    engine, fmbench_fixtures_module, read_dir, tmp_path, no_leftovers
) -> None:
    config = fmbench_fixtures_module / "configs" / "llama3" / "8b" / "config-ec2-llama3-8b.yml"
    results = tmp_path / "results"
    with docker_env.impersonating_image(engine, "djl", DJL_IMAGE):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fmb",
                "run",
                str(config),
                "--results",
                str(results),
                "--quiet",
                "--host-port",
                "auto",
                *assignments(read_dir, region="us-east-1"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=os.environ | {"COLUMNS": "200"},
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not list((results / "raw" / "requests").rglob("*")):
                assert proc.poll() is None, proc.communicate()[0]
                time.sleep(0.2)
            assert docker_env.fmb_containers(engine, benchmark="llama3-8b-g5.2xl-djl-ec2")  # it is collecting
            proc.send_signal(signal.SIGTERM)
            output, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    assert docker_env.fmb_containers(engine, benchmark="llama3-8b-g5.2xl-djl-ec2") == []


def test_two_container_experiments_on_one_host_are_deployed_one_at_a_time(
    engine, tmp_path, cli_runner, no_leftovers
) -> None:
    """Both ask for the same host port (as FMBench's EC2 configs do): fmb run deploys, runs and removes each in turn."""
    port = free_port()
    experiment = """
    - name: {name}
      model_id: org/{name}
      ep_name: http://127.0.0.1:{port}/v1/completions
      instance_type: g6e.xlarge
      image_uri: {image}
      deploy: yes
      deployment_script: ec2_deploy.py
      inference_script: ec2_predictor.py
      ec2: {{model_loading_timeout: 120}}
      inference_spec: {{container_type: vllm, parameter_set: p}}
      payload_files: [payload_en_1-400.jsonl]
      concurrency_levels: [1, 2]
    """
    config = tmp_path / "two.yml"
    config.write_text(
        """
general: {name: two-on-one-host}
s3_read_data: {source_data_files: ["synthetic:longbench"]}
datasets:
  prompt_template_keys: [input, context]
  synthetic: {records: 20, max_context_words: 200}
  min_iters_per_combination: 2
  max_iters_per_combination: 2
  filters:
  - {language: en, min_length_in_tokens: 1, max_length_in_tokens: 400, payload_file: "payload_{lang}_{min}-{max}.jsonl"}
inference_parameters:
  p: {max_tokens: 8}
experiments:
"""
        + "".join(
            experiment.format(name=name, port=port, image=VLLM_IMAGE).replace("\n    ", "\n")
            for name in ("first", "second")
        )
    )
    results = tmp_path / "results"
    with docker_env.impersonating_image(engine, "vllm", VLLM_IMAGE):
        result = cli_runner.invoke(cli, ["run", str(config), "--results", str(results), "--quiet"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "deployed one at a time" in result.output
    cells = warehouse(results, "select experiment, count_successful_requests, count_requests from cells")
    assert {e for e, _, _ in cells} == {"first", "second"} and all(ok == n > 0 for _, ok, n in cells)
    # One run holds both, and each experiment's row says where its container answered and how long it took.
    assert warehouse(results, "select count(distinct run_id) from cells") == [(1,)]
    experiments = warehouse(results, "select experiment, endpoint, deploy_seconds from stg_raw__experiments")
    assert {e: url for e, url, _ in experiments} == {
        "first": f"http://127.0.0.1:{port}/v1/completions",
        "second": f"http://127.0.0.1:{port}/v1/completions",
    }
    assert all(s is not None and s > 0 for _, _, s in experiments)
    # The first container had stopped before the second started.
    logs = {p.name.split("-")[0]: p.read_text().splitlines() for p in (results / "deployments" / "logs").rglob("*.log")}
    first_stopped = logs["first"][-1].split()[0]
    second_started = logs["second"][0].split()[0]
    assert first_stopped < second_started
