"""Every container API target against the mock endpoint, streamed and not, from FMBench-style configs."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pyarrow.dataset as ds
import pytest

from fmb.cli import cli
from fmb.collector.mock.process import mock_server
from fmb.config import load_config

pytestmark = pytest.mark.slow  # servers in subprocesses, dbt builds or a real model

CASES = {
    # name: (experiment keys, parameter set, streams?, usage from the server?)
    "tgi": (
        "inference_script: ec2_predictor.py\n  inference_spec: {parameter_set: p, container_type: tgi}\n"
        "  ep_name: '{url}/generate'",
        "{max_new_tokens: 12, stop: '</s>'}",
        True,
        True,
    ),
    "triton": (
        "inference_script: ec2_predictor.py\n  inference_spec: {parameter_set: p, container_type: triton}\n"
        "  ep_name: '{url}/v2/models/ensemble/generate'",
        "{max_tokens: 12}",
        True,
        False,
    ),
    "djl": (
        "inference_script: ec2_predictor.py\n  inference_spec: {parameter_set: p}\n  ep_name: '{url}/invocations'",
        "{max_new_tokens: 12, do_sample: true}",
        True,
        False,
    ),
    "ollama": (
        "inference_script: ec2_predictor.py\n  inference_spec: {parameter_set: p, container_type: ollama}\n"
        "  ep_name: '{url}/api/generate'",
        "{model: 'llama3.1:8b', stream: false, options: {num_predict: 12}}",
        True,
        True,
    ),
    "llama-cpp": (
        "inference_script: ec2_predictor.py\n  inference_spec: {parameter_set: p, container_type: llama_server}\n"
        "  ep_name: '{url}/completion'",
        "{max_tokens: 12}",
        True,
        True,
    ),
    "custom-rest": (
        "inference_script: custom_rest_predictor.py\n"
        "  inference_spec:\n    parameter_set: p\n    model_id: my-model\n"
        "    headers: {custom_client_id: me, custom_authentication_token: tok-123456789, content-type: application/json}\n"
        "  ep_name: '{url}/custom/generate'",
        "{generation_config: {max_tokens: 12}}",
        False,
        True,
    ),
}


def config(tmp_path: Path, name: str, url: str, stream: bool) -> Path:
    keys, params, _, _ = CASES[name]
    text = (
        dedent(
            """
        general: {name: apis}
        s3_read_data: {source_data_files: ["synthetic:longbench"]}
        datasets:
          prompt_template_keys: [input]
          synthetic: {records: 12}
          min_iters_per_combination: 3
          max_iters_per_combination: 3
          filters:
          - {language: en, min_length_in_tokens: 1, max_length_in_tokens: 100, payload_file: p.jsonl}
        inference_parameters:
          p: PARAMS
        experiments:
        - name: EXP
          STREAM
          KEYS
          payload_files: [p.jsonl]
          concurrency_levels: [1, 2]
        """
        )
        .replace("PARAMS", params)
        .replace("EXP", name)
        .replace("STREAM", f"stream: {str(stream).lower()}")
    )
    text = text.replace("KEYS", keys.replace("{url}", url))
    path = tmp_path / "config.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("name", list(CASES))
def test_container_api(tmp_path: Path, cli_runner, name: str, stream: bool) -> None:
    _, _, can_stream, server_usage = CASES[name]
    if stream and not can_stream:
        pytest.skip(f"{name} has no streaming API")
    results = tmp_path / "results"
    with mock_server(ttft_ms=30, itl_ms=4, output_tokens=12) as url:
        path = config(tmp_path, name, url, stream)
        assert load_config(path).experiments[0].backend == name
        assert cli_runner.invoke(cli, ["prepare", str(path), "--results", str(results)]).exit_code == 0
        result = cli_runner.invoke(cli, ["collect", str(path), "--results", str(results), "--quiet"])
    assert result.exit_code == 0, result.output
    rows = ds.dataset(results / "raw" / "requests", partitioning="hive").to_table().to_pylist()
    assert len(rows) == 3 * 1 + 3 * 2
    expected_text = "".join(f" w{i}" for i in range(12))
    for row in rows:
        assert row["status"] == "ok", row["error_message"]
        assert row["completion_text"] == expected_text
        assert row["e2e_latency_ms"] >= 30 + 11 * 4 - 2
        if stream:
            assert row["content_chunks"] == 12 and abs(row["ttft_ms"] - 30) < 15
        else:
            assert row["ttft_ms"] is None
        if server_usage:
            # TGI reports only the completion count; the prompt count then comes from the client.
            assert row["completion_tokens_server"] == 12
            assert (row["prompt_tokens_server"] is None) == (name == "tgi")
        else:
            assert row["completion_tokens_server"] is None and row["prompt_tokens_server"] is None
            assert row["completion_tokens_client"] > 0 and row["prompt_tokens_client"] > 0


def test_container_api_errors_are_rows(tmp_path: Path, cli_runner) -> None:
    results = tmp_path / "results"
    with mock_server(ttft_ms=5, itl_ms=1, output_tokens=4, error_rate=0.3, throttle_rate=0.2, seed=5) as url:
        path = config(tmp_path, "tgi", url, True)
        assert cli_runner.invoke(cli, ["prepare", str(path), "--results", str(results)]).exit_code == 0
        result = cli_runner.invoke(cli, ["collect", str(path), "--results", str(results), "--quiet"])
    assert result.exit_code == 0, result.output
    statuses = {
        r["status"] for r in ds.dataset(results / "raw" / "requests", partitioning="hive").to_table().to_pylist()
    }
    assert {"error", "throttled"} <= statuses
