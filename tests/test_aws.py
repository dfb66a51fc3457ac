"""SageMaker and Bedrock, end to end, against local servers that speak the AWS protocols.

boto3 runs its real code paths (signing, serialisation, error parsing, event streams)
against moto's SageMaker control plane and fmb's mock SageMaker and Bedrock runtimes.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from textwrap import dedent

import duckdb
import pyarrow.dataset as ds
import pytest

from fmb.cli import cli
from fmb.collector.mock.process import mock_server
from tests.aws_servers import (
    CREDENTIALS,
    FAILURE_REASON,
    bring_endpoint,
    created_resources,
    failing_sagemaker,
    moto_server,
    seed_jumpstart,
)

pytestmark = pytest.mark.slow  # servers in subprocesses, dbt builds or a real model


@pytest.fixture(autouse=True)
def no_real_aws(monkeypatch, tmp_path: Path) -> None:
    """No credentials, config or endpoint from the machine: only what a test gives with -A."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def moto() -> str:
    with moto_server() as url:
        yield url


def aws_args(**endpoints: str) -> list[str]:
    args = []
    for key, value in {**endpoints, **CREDENTIALS}.items():
        args += ["-A", f"{key}={value}"]
    return args


COMMON = """
general: {name: NAME, model_name: test-model}
aws: {region: us-east-1, sagemaker_execution_role: "arn:aws:iam::123456789012:role/fmb-test", bucket: b}
s3_read_data: {source_data_files: ["synthetic:longbench"]}
datasets:
  prompt_template_keys: [input, context]
  synthetic: {records: 16, max_context_words: 120}
  min_iters_per_combination: 3
  max_iters_per_combination: 3
  filters:
  - {language: en, min_length_in_tokens: 1, max_length_in_tokens: 1000, payload_file: payload_en_1-1000.jsonl}
metrics: {dataset_of_interest: en_1-1000}
pricing: PRICING
report: {latency_budget: 10, cost_per_10k_txn_budget: 1000, error_rate_budget: 1}
"""


def write(tmp_path: Path, name: str, body: str) -> Path:
    pricing = Path(__file__).resolve().parent.parent / "configs" / "pricing.yml"
    path = tmp_path / f"{name}.yml"
    path.write_text(dedent(COMMON).replace("NAME", name).replace("PRICING", str(pricing)) + dedent(body))
    return path


def requests(results: Path) -> list[dict]:
    return ds.dataset(results / "raw" / "requests", partitioning="hive").to_table().to_pylist()


SAGEMAKER = """
inference_parameters:
  sagemaker: {max_new_tokens: 16, top_p: 0.9, temperature: 0.1, details: true}
experiments:
- name: tgi-on-g4dn
  model_id: my-model
  ep_name: EP_NAME
  instance_type: ml.g4dn.xlarge
  instance_count: 1
  image_uri: 763104351884.dkr.ecr.{region}.amazonaws.com/huggingface-pytorch-tgi-inference:2.1.1-tgi1.4.0-gpu-py310-cu121-ubuntu20.04
  deploy: yes
  deployment_script: deploy_w_hf_tgi.py
  inference_script: sagemaker_predictor.py
  inference_spec: {parameter_set: sagemaker, stream: true}
  payload_files: [payload_en_1-1000.jsonl]
  concurrency_levels: [1, 2]
  env: {SM_NUM_GPUS: "1", MAX_INPUT_LENGTH: "4095"}
"""


def test_sagemaker_deploy_collect_and_cleanup(tmp_path: Path, cli_runner, moto: str) -> None:
    before = created_resources(moto)
    config = write(tmp_path, "sm-deploy", SAGEMAKER.replace("EP_NAME", "fmb-test-tgi"))
    results = tmp_path / "results"
    with mock_server(ttft_ms=30, itl_ms=3, output_tokens=40) as runtime:
        result = cli_runner.invoke(
            cli,
            [
                "run",
                str(config),
                "--results",
                str(results),
                "--quiet",
                *aws_args(sagemaker_endpoint_url=moto, sagemaker_runtime_endpoint_url=runtime),
            ],
            terminal_width=200,
        )
    assert result.exit_code == 0, result.output
    assert "is InService" in result.output and "tgi-on-g4dn: removed (sagemaker" in result.output
    rows = requests(results)
    assert len(rows) == 3 * 1 + 3 * 2
    for row in rows:
        assert row["status"] == "ok", row["error_message"]
        assert row["completion_tokens_server"] == 16 and row["content_chunks"] == 16
        assert 25 <= row["ttft_ms"] <= 60
        assert row["completion_text"] == "".join(f" w{i}" for i in range(16))
    (experiment,) = duckdb.sql(
        f"select endpoint, deployed, deploy_seconds from read_parquet('{results}/raw/experiments/*/*.parquet')"
    ).fetchall()
    assert experiment[0].startswith("fmb-test-tgi-") and experiment[1] is True and experiment[2] >= 0
    con = duckdb.connect(str(results / "warehouse.duckdb"), read_only=True)
    assert con.execute("select price_key from experiment_runs").fetchall() == [("ml.g4dn.xlarge",)]  # priced in SQL
    con.close()
    assert (results / "reports" / "sm-deploy" / "report.md").is_file()
    # Everything fmb created is gone again.
    assert created_resources(moto) == before


JUMPSTART = """
inference_parameters:
  sagemaker: {max_new_tokens: 8, details: true}
experiments:
- name: jumpstart-model
  model_id: fmb-test-textgen
  model_version: "*"
  ep_name: fmb-test-jumpstart
  instance_type: ml.g4dn.xlarge
  instance_count: 1
  deploy: yes
  accept_eula: true
  deployment_script: jumpstart.py
  inference_script: sagemaker_predictor.py
  inference_spec: {parameter_set: sagemaker, stream: true}
  payload_files: [payload_en_1-1000.jsonl]
  concurrency_levels: [1]
"""


def test_jumpstart_deploy_through_the_sagemaker_sdk(tmp_path: Path, cli_runner, moto: str) -> None:
    pytest.importorskip("sagemaker")
    seed_jumpstart(moto, ["fmb-test-textgen"])
    before = created_resources(moto)
    config = write(tmp_path, "jumpstart", JUMPSTART)
    results = tmp_path / "results"
    with mock_server(ttft_ms=10, itl_ms=1, output_tokens=8) as runtime:
        result = cli_runner.invoke(
            cli,
            [
                "run",
                str(config),
                "--results",
                str(results),
                "--quiet",
                *aws_args(sagemaker_endpoint_url=moto, s3_endpoint_url=moto, sagemaker_runtime_endpoint_url=runtime),
            ],
            terminal_width=200,
        )
    assert result.exit_code == 0, result.output
    assert "is InService" in result.output and "jumpstart-model: removed (sagemaker" in result.output
    assert all(r["status"] == "ok" and r["completion_tokens_server"] == 8 for r in requests(results))
    assert created_resources(moto) == before


def test_a_failed_endpoint_reports_its_failure_reason(tmp_path: Path, cli_runner, moto: str) -> None:
    before = created_resources(moto)
    config = write(tmp_path, "sm-fail", SAGEMAKER.replace("EP_NAME", "will-fail"))
    with failing_sagemaker(moto) as control:
        result = cli_runner.invoke(
            cli, ["deploy", str(config), "--results", str(tmp_path / "r"), *aws_args(sagemaker_endpoint_url=control)]
        )
    assert result.exit_code == 1
    assert "is Failed" in result.output and FAILURE_REASON in result.output
    assert created_resources(moto) == before
    assert json.loads((tmp_path / "r" / "deployments" / "sm-fail.json").read_text())["deployments"] == []


def test_a_rejected_instance_type_is_a_clear_error(tmp_path: Path, cli_runner, moto: str) -> None:
    before = created_resources(moto)
    config = write(tmp_path, "sm-g5", SAGEMAKER.replace("EP_NAME", "g5-ep").replace("ml.g4dn.xlarge", "ml.g5.12xlarge"))
    result = cli_runner.invoke(
        cli, ["deploy", str(config), "--results", str(tmp_path / "r"), *aws_args(sagemaker_endpoint_url=moto)]
    )
    assert result.exit_code == 1
    assert "SageMaker deployment failed (ValidationException" in result.output and "ml.g5.12xlarge" in result.output
    assert created_resources(moto) == before


def test_cleanup_after_a_failed_run_and_never_a_brought_endpoint(
    tmp_path: Path, cli_runner, moto: str, monkeypatch
) -> None:
    bring_endpoint(moto, "brought-by-the-user")
    before = created_resources(moto)
    monkeypatch.delenv("FMB_MISSING_KEY", raising=False)
    body = SAGEMAKER.replace("EP_NAME", "fmb-test-cleanup") + dedent("""
    - name: brought
      ep_name: brought-by-the-user
      instance_type: ml.g4dn.xlarge
      deploy: no
      inference_script: sagemaker_predictor.py
      inference_spec: {parameter_set: sagemaker}
      payload_files: [payload_en_1-1000.jsonl]
      concurrency_levels: [1]
    - name: broken
      api: openai-chat
      endpoint_url: http://127.0.0.1:9/v1
      api_key_env: FMB_MISSING_KEY
      payload_files: [payload_en_1-1000.jsonl]
      concurrency_levels: [1]
    """)
    config = write(tmp_path, "sm-cleanup", body)
    with mock_server(ttft_ms=5, itl_ms=1, output_tokens=4) as runtime:
        result = cli_runner.invoke(
            cli,
            [
                "run",
                str(config),
                "--results",
                str(tmp_path / "r"),
                "--quiet",
                *aws_args(sagemaker_endpoint_url=moto, sagemaker_runtime_endpoint_url=runtime),
            ],
        )
    assert result.exit_code == 1 and "FMB_MISSING_KEY" in result.output
    assert "tgi-on-g4dn: removed (sagemaker" in result.output
    after = created_resources(moto)
    assert after == before  # fmb's endpoint, config and model are gone; the brought one is untouched
    assert "brought-by-the-user" in after["endpoints"]


BEDROCK = """
inference_parameters:
  bedrock: {temperature: 0.1, max_tokens: 20, top_p: 0.92, caching: false}
experiments:
- name: llama-3-1-8b
  model_id: meta.llama3-1-8b-instruct-v1:0
  ep_name: us.meta.llama3-1-8b-instruct-v1:0
  instance_type: us.meta.llama3-1-8b-instruct-v1:0
  deploy: no
  inference_script: bedrock_predictor.py
  inference_spec: {split_input_and_parameters: no, parameter_set: bedrock, stream: true}
  max_attempts: 3
  retry_backoff_s: 0.01
  payload_files: [payload_en_1-1000.jsonl]
  concurrency_levels: [1, 2]
"""


def test_bedrock_converse_stream_with_throttling_and_broken_streams(tmp_path: Path, cli_runner) -> None:
    config = write(tmp_path, "bedrock", BEDROCK.replace("min_iters", "min_iters"))
    config.write_text(
        config.read_text()
        .replace("min_iters_per_combination: 3", "min_iters_per_combination: 20")
        .replace("max_iters_per_combination: 3", "max_iters_per_combination: 20")
    )
    results = tmp_path / "results"
    with mock_server(
        ttft_ms=25, itl_ms=2, output_tokens=30, throttle_rate=0.35, stream_error_rate=0.15, seed=4
    ) as runtime:
        result = cli_runner.invoke(
            cli,
            ["run", str(config), "--results", str(results), "--quiet", *aws_args(bedrock_runtime_endpoint_url=runtime)],
            terminal_width=200,
        )
    assert result.exit_code == 0, result.output
    rows = requests(results)
    assert len(rows) == 20 + 40
    ok = [r for r in rows if r["status"] == "ok"]
    throttled = [r for r in rows if r["status"] == "throttled"]
    broken = [r for r in rows if r["status"] == "error"]
    assert ok and throttled and broken
    assert all(r["attempts"] == 3 and r["error_type"] == "ThrottlingException" for r in throttled)
    assert any(r["attempts"] > 1 for r in ok)  # retried after throttling, then succeeded
    for r in ok:
        assert r["completion_tokens_server"] == 20 and r["prompt_tokens_server"] > 0
        assert 20 <= r["ttft_ms"] <= 60  # the clock restarts on a retry: backoff never counts as latency
    for r in broken:
        assert r["error_type"] == "modelStreamErrorException" and r["ttft_ms"] is not None
    con = duckdb.connect(str(results / "warehouse.duckdb"), read_only=True)
    (priced,) = con.execute("select distinct price_status from cells").fetchall()
    con.close()
    assert priced == ("priced",)  # us.meta... is priced as meta.llama3-1-8b-instruct-v1:0 in pricing.yml


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("cohere.command-text-v14", ""),  # InvokeModel: Converse does not serve it
        ("amazon.titan-text-express-v1", "bedrock_api: invoke-model"),
        ("anthropic.claude-3-haiku-20240307-v1:0", "bedrock_api: invoke-model"),
        ("mistral.mistral-7b-instruct-v0:2", "bedrock_api: invoke-model"),
        ("anthropic.claude-3-haiku-20240307-v1:0", ""),  # Converse
    ],
)
def test_bedrock_model_families(tmp_path: Path, cli_runner, model: str, extra: str, stream: bool) -> None:
    body = (
        BEDROCK.replace("us.meta.llama3-1-8b-instruct-v1:0", model)
        .replace("meta.llama3-1-8b-instruct-v1:0", model)
        .replace("stream: true", f"stream: {str(stream).lower()}")
    )
    body = body.replace("  max_attempts: 3\n", f"  {extra}\n" if extra else "")
    config = write(tmp_path, "families", body)
    results = tmp_path / "results"
    with mock_server(ttft_ms=10, itl_ms=1, output_tokens=12) as runtime:
        assert cli_runner.invoke(cli, ["prepare", str(config), "--results", str(results)]).exit_code == 0
        result = cli_runner.invoke(
            cli,
            [
                "collect",
                str(config),
                "--results",
                str(results),
                "--quiet",
                *aws_args(bedrock_runtime_endpoint_url=runtime),
            ],
        )
    assert result.exit_code == 0, result.output
    rows = requests(results)
    assert rows and all(r["status"] == "ok" for r in rows), rows[0]["error_message"]
    for r in rows:
        assert r["completion_text"] == "".join(f" w{i}" for i in range(12))
        assert r["completion_tokens_server"] == 12
        assert (r["ttft_ms"] is not None) == stream


SAGEMAKER_VARIANTS = """
inference_parameters:
  sagemaker: {max_new_tokens: 10, max_tokens: 10}
  embedding: {}
experiments:
- name: messages-api
  ep_name: brought-ep
  instance_type: ml.g4dn.xlarge
  use_messages_api_format: true
  inference_script: sagemaker_predictor.py
  inference_spec: {parameter_set: sagemaker, stream: STREAM}
  payload_files: [payload_en_1-1000.jsonl]
  concurrency_levels: [1]
- name: tgi-whole
  ep_name: brought-ep
  instance_type: ml.g4dn.xlarge
  inference_script: sagemaker_predictor.py
  inference_spec: {parameter_set: sagemaker, stream: STREAM}
  payload_files: [payload_en_1-1000.jsonl]
  concurrency_levels: [1]
- name: embeddings
  ep_name: brought-ep
  instance_type: ml.g4dn.xlarge
  inference_script: sagemaker_predictor.py
  inference_spec: {parameter_set: embedding, container_type: huggingface}
  payload_files: [payload_en_1-1000.jsonl]
  concurrency_levels: [1]
"""


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_sagemaker_payload_formats(tmp_path: Path, cli_runner, moto: str, stream: bool) -> None:
    try:
        bring_endpoint(moto, "brought-ep")
    except Exception:  # already there from the other parameter
        pass
    config = write(tmp_path, "sm-formats", SAGEMAKER_VARIANTS.replace("STREAM", str(stream).lower()))
    results = tmp_path / "results"
    with mock_server(ttft_ms=10, itl_ms=1, output_tokens=10) as runtime:
        assert cli_runner.invoke(cli, ["prepare", str(config), "--results", str(results)]).exit_code == 0
        result = cli_runner.invoke(
            cli,
            [
                "collect",
                str(config),
                "--results",
                str(results),
                "--quiet",
                *aws_args(sagemaker_endpoint_url=moto, sagemaker_runtime_endpoint_url=runtime),
            ],
        )
    assert result.exit_code == 0, result.output
    by_experiment: dict[str, list[dict]] = {}
    for row in requests(results):
        by_experiment.setdefault(row["experiment"], []).append(row)
    for name in ("messages-api", "tgi-whole"):
        for r in by_experiment[name]:
            assert r["status"] == "ok", r["error_message"]
            assert r["completion_text"] == "".join(f" w{i}" for i in range(10))
            assert (r["ttft_ms"] is not None) == stream
    assert all(r["completion_tokens_server"] == 10 for r in by_experiment["messages-api"])
    for r in by_experiment["embeddings"]:
        completion = r["completion_tokens_server"]
        completion = r["completion_tokens_client"] if completion is None else completion
        assert r["status"] == "ok" and completion == 0 and r["stream"] is False


def test_sagemaker_model_errors_and_unknown_endpoints(tmp_path: Path, cli_runner, moto: str) -> None:
    config = write(tmp_path, "sm-errors", SAGEMAKER_VARIANTS.replace("STREAM", "true").split("- name: tgi-whole")[0])
    results = tmp_path / "results"
    with mock_server(ttft_ms=5, itl_ms=1, output_tokens=4, error_rate=0.5, seed=1) as runtime:
        assert cli_runner.invoke(cli, ["prepare", str(config), "--results", str(results)]).exit_code == 0
        missing = config.read_text().replace("ep_name: brought-ep", "ep_name: nobody-made-this")
        (tmp_path / "missing.yml").write_text(missing)
        result = cli_runner.invoke(
            cli,
            [
                "collect",
                str(tmp_path / "missing.yml"),
                "--results",
                str(results),
                "--quiet",
                *aws_args(sagemaker_endpoint_url=moto, sagemaker_runtime_endpoint_url=runtime),
            ],
        )
        assert result.exit_code == 1 and "'nobody-made-this' cannot be used" in result.output
        with contextlib.suppress(Exception):
            bring_endpoint(moto, "brought-ep")
        result = cli_runner.invoke(
            cli,
            [
                "collect",
                str(config),
                "--results",
                str(results),
                "--quiet",
                *aws_args(sagemaker_endpoint_url=moto, sagemaker_runtime_endpoint_url=runtime),
            ],
        )
    assert result.exit_code == 0, result.output
    errors = [r for r in requests(results) if r["status"] == "error"]
    assert errors and all(r["error_type"] == "ModelError" and r["http_status"] == 424 for r in errors)
    assert all("injected fault" in r["error_message"] for r in errors)


def test_no_credentials_is_a_clear_error(tmp_path: Path, cli_runner) -> None:
    config = write(tmp_path, "nocreds", BEDROCK)
    results = tmp_path / "results"
    assert cli_runner.invoke(cli, ["prepare", str(config), "--results", str(results)]).exit_code == 0
    result = cli_runner.invoke(
        cli,
        [
            "collect",
            str(config),
            "--results",
            str(results),
            "--quiet",
            "-A",
            "bedrock_runtime_endpoint_url=http://127.0.0.1:9",
        ],
    )
    assert result.exit_code == 1 and "no AWS credentials were found" in result.output


def test_credentials_given_with_A_are_never_written(tmp_path: Path, cli_runner) -> None:
    config = write(tmp_path, "secret", BEDROCK)
    results = tmp_path / "results"
    with mock_server(ttft_ms=5, itl_ms=1, output_tokens=4) as runtime:
        result = cli_runner.invoke(
            cli,
            ["run", str(config), "--results", str(results), "--quiet", *aws_args(bedrock_runtime_endpoint_url=runtime)],
        )
    assert result.exit_code == 0, result.output
    secret = CREDENTIALS["aws_secret_access_key"].encode()
    for path in results.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path


def test_ctrl_c_during_collect_removes_the_sagemaker_endpoint(tmp_path: Path, moto: str) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    before = created_resources(moto)
    config = write(tmp_path, "sm-sigint", SAGEMAKER.replace("EP_NAME", "fmb-test-sigint"))
    config.write_text(
        config.read_text()
        .replace("max_iters_per_combination: 3", "max_iters_per_combination: 200")
        .replace("min_iters_per_combination: 3", "min_iters_per_combination: 200")
    )
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    with mock_server(ttft_ms=50, itl_ms=10, output_tokens=16) as runtime:
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
                *aws_args(sagemaker_endpoint_url=moto, sagemaker_runtime_endpoint_url=runtime),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list((results / "raw" / "requests").rglob(".journal-*.jsonl")):
            time.sleep(0.2)
        assert len(created_resources(moto)["endpoints"]) == len(before["endpoints"]) + 1
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out.decode()
    assert b"Traceback" not in out
    assert created_resources(moto) == before
    assert [r for r in requests(results) if r["status"] == "ok"]
