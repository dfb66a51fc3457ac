"""CloudWatch metrics of SageMaker and Bedrock experiments, through moto's CloudWatch server.

The mock runtime publishes per-request metrics into moto with PutMetricData, as SageMaker
and Bedrock do; fmb reads them back with GetMetricData into raw/endpoint_metrics.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import dedent
from typing import Any

import boto3
import duckdb
import pyarrow.dataset as ds
import pytest

from fmb.cli import cli
from fmb.collector.cloudwatch import METRICS, Outcome, Source, _datapoints, fetch, widen
from fmb.collector.mock.process import mock_server
from fmb.config import load_config
from tests.aws_servers import CREDENTIALS, bring_endpoint, moto_server


@pytest.fixture(autouse=True)
def no_real_aws(monkeypatch, tmp_path: Path) -> None:
    """No credentials, config or endpoint from the machine: only what a test gives with -A."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_CLOUDWATCH",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


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
"""

SAGEMAKER = """
inference_parameters:
  sagemaker: {max_new_tokens: 8, details: true}
experiments:
- name: tgi
  ep_name: cw-endpoint
  instance_type: ml.g4dn.xlarge
  inference_script: sagemaker_predictor.py
  inference_spec: {parameter_set: sagemaker, stream: true}
  payload_files: [payload_en_1-1000.jsonl]
  concurrency_levels: [1, 2]
"""

BEDROCK = """
inference_parameters:
  bedrock: {temperature: 0.1, max_tokens: 12}
experiments:
- name: llama
  model_id: meta.llama3-1-8b-instruct-v1:0
  ep_name: us.meta.llama3-1-8b-instruct-v1:0
  instance_type: us.meta.llama3-1-8b-instruct-v1:0
  inference_script: bedrock_predictor.py
  inference_spec: {parameter_set: bedrock, stream: true}
  payload_files: [payload_en_1-1000.jsonl]
  concurrency_levels: [1, 2]
"""


def write(tmp_path: Path, name: str, body: str) -> Path:
    pricing = Path(__file__).resolve().parent.parent / "configs" / "pricing.yml"
    path = tmp_path / f"{name}.yml"
    path.write_text(dedent(COMMON).replace("NAME", name).replace("PRICING", str(pricing)) + dedent(body))
    return path


def table(results: Path, name: str) -> list[dict[str, Any]]:
    return ds.dataset(results / "raw" / name, partitioning="hive").to_table().to_pylist()


def figures(results: Path, fetched_at: str = "max") -> dict[tuple[str, str], float]:
    """(metric, stat) -> value summed over the periods, of the latest (or earliest) fetch."""
    rows = (
        duckdb.connect()
        .execute(
            f"""
        with fetches as (
            select *, fetched_at = {fetched_at}(fetched_at) over () as chosen
            from read_parquet('{results}/raw/endpoint_metrics/*/*.parquet')
        )
        select metric, stat, sum(value) from fetches where chosen group by metric, stat
        """
        )
        .fetchall()
    )
    return {(metric, stat): value for metric, stat, value in rows}


def test_widen_to_whole_periods() -> None:
    start = datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC)
    assert widen(start, start + timedelta(seconds=100), 60) == (
        datetime(2025, 1, 1, 12, 0, tzinfo=UTC),
        datetime(2025, 1, 1, 12, 3, tzinfo=UTC),
    )
    on_edge = datetime(2025, 1, 1, 12, 2, tzinfo=UTC)  # an end on a boundary keeps its own period
    assert widen(start, on_edge, 60)[1] == datetime(2025, 1, 1, 12, 3, tzinfo=UTC)


def test_queries_are_batched_and_pages_followed() -> None:
    """At most 500 queries a call, every NextToken followed, every page's values kept."""

    class Client:
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
            self.calls.append(kwargs)
            first = kwargs["MetricDataQueries"][0]["Id"]
            page = 2 if kwargs.get("NextToken") else 1
            answer: dict[str, Any] = {
                "MetricDataResults": [
                    {
                        "Id": first,
                        "Timestamps": [kwargs["StartTime"]],
                        "Values": [float(page)],
                        "StatusCode": "Complete",
                    }
                ]
            }
            if page == 1:
                answer["NextToken"] = "more"
            return answer

    now = datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC)
    source = Source("e", "bedrock", None, (("ModelId", "m"),), now, now + timedelta(seconds=5))
    client = Client()
    many = {"bedrock": METRICS["bedrock"] * 30}  # more than 500 queries
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("fmb.collector.cloudwatch.METRICS", many)
        rows = list(_datapoints(client, source, "r", 60, now, Outcome()))
    assert len(client.calls) == 4 and all(len(c["MetricDataQueries"]) <= 500 for c in client.calls)
    assert [c.get("NextToken") for c in client.calls] == [None, "more", None, "more"]
    assert [r["value"] for r in rows] == [1.0, 2.0, 1.0, 2.0]
    assert rows[0]["dimensions"] == '{"ModelId": "m"}' and rows[0]["period_started_at"] == now.replace(second=0)


def test_fetch_reads_back_what_was_put(tmp_path: Path) -> None:
    """PutMetricData into moto's CloudWatch, then fmb's fetch: values, statistics, units and periods.

    moto keeps its data for the whole test process: every test uses endpoint names of its own.
    """
    config = write(tmp_path, "cw-put", SAGEMAKER)
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    earlier = now - timedelta(minutes=2)
    with moto_server() as moto:
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=moto, **CREDENTIALS)
        sm = [{"Name": "EndpointName", "Value": "cw-put-endpoint"}, {"Name": "VariantName", "Value": "AllTraffic"}]
        other = [{"Name": "EndpointName", "Value": "someone-else"}, {"Name": "VariantName", "Value": "AllTraffic"}]
        cloudwatch.put_metric_data(
            Namespace="AWS/SageMaker",
            MetricData=[
                {"MetricName": "Invocations", "Dimensions": sm, "Timestamp": earlier, "Value": 1, "Unit": "None"},
                {"MetricName": "Invocations", "Dimensions": sm, "Timestamp": now, "Value": 1, "Unit": "None"},
                {"MetricName": "Invocations", "Dimensions": sm, "Timestamp": now, "Value": 1, "Unit": "None"},
                {"MetricName": "Invocations", "Dimensions": other, "Timestamp": now, "Value": 7, "Unit": "None"},
                {"MetricName": "ModelLatency", "Dimensions": sm, "Timestamp": now, "Value": 1000.0},
                {"MetricName": "ModelLatency", "Dimensions": sm, "Timestamp": now, "Value": 3000.0},
            ],
        )
        cloudwatch.put_metric_data(
            Namespace="/aws/sagemaker/Endpoints",
            MetricData=[{"MetricName": "GPUUtilization", "Dimensions": sm, "Timestamp": now, "Value": 87.5}],
        )
        loaded = load_config(config, {"cloudwatch_endpoint_url": moto, **CREDENTIALS}, tmp_path / "results")
        dims = (("EndpointName", "cw-put-endpoint"), ("VariantName", "AllTraffic"))
        source = Source("tgi", "sagemaker", "us-east-1", dims, earlier, now)
        rows, outcome = fetch(loaded, [source], "run-1", 60)
    assert outcome.notes == [] and outcome.datapoints == {"tgi": len(rows)}
    found = {(r["namespace"], r["metric"], r["stat"], r["period_started_at"]): r for r in rows}
    minute = now.replace(second=0)
    invocations = found[("AWS/SageMaker", "Invocations", "Sum", minute)]
    assert invocations["value"] == 2 and invocations["unit"] == "None" and invocations["period_s"] == 60
    assert found[("AWS/SageMaker", "Invocations", "Sum", earlier.replace(second=0))]["value"] == 1
    assert found[("AWS/SageMaker", "ModelLatency", "Average", minute)]["value"] == 2000
    assert found[("AWS/SageMaker", "ModelLatency", "Maximum", minute)]["value"] == 3000
    assert found[("AWS/SageMaker", "ModelLatency", "Minimum", minute)]["unit"] == "Microseconds"
    assert found[("AWS/SageMaker", "ModelLatency", "SampleCount", minute)]["value"] == 2
    gpu = found[("/aws/sagemaker/Endpoints", "GPUUtilization", "Average", minute)]
    assert gpu["value"] == 87.5 and gpu["unit"] == "Percent"
    assert {r["dimensions"] for r in rows} == {'{"EndpointName": "cw-put-endpoint", "VariantName": "AllTraffic"}'}
    assert {r["run_id"] for r in rows} == {"run-1"} and len({r["fetched_at"] for r in rows}) == 1
    assert len(rows) == 8  # Invocations in two minutes, four latency statistics, the GPU average and maximum


@pytest.mark.slow
def test_sagemaker_run_has_cloudwatch_figures_and_fmb_cloudwatch_fetches_again(tmp_path: Path, cli_runner) -> None:
    config = write(tmp_path, "cw-sagemaker", SAGEMAKER)
    results = tmp_path / "results"
    with moto_server() as moto, mock_server(ttft_ms=5, itl_ms=1, output_tokens=8, cloudwatch_url=moto) as runtime:
        bring_endpoint(moto, "cw-endpoint")
        args = aws_args(
            sagemaker_endpoint_url=moto, sagemaker_runtime_endpoint_url=runtime, cloudwatch_endpoint_url=moto
        )
        assert cli_runner.invoke(cli, ["prepare", str(config), "--results", str(results)]).exit_code == 0
        result = cli_runner.invoke(cli, ["collect", str(config), "--results", str(results), *args])
        assert result.exit_code == 0, result.output
        assert "cloudwatch: fetched" in result.output and "fmb cloudwatch CONFIG --run-id" in result.output
        sent = table(results, "requests")
        assert len(sent) == 3 + 6 + sum(r["is_warmup"] for r in sent) and all(r["status"] == "ok" for r in sent)
        first = figures(results)
        assert first[("Invocations", "Sum")] == len(sent)  # warm-ups included: CloudWatch counts every call
        assert first[("Invocation4XXErrors", "Sum")] == 0 and first[("Invocation5XXErrors", "Sum")] == 0
        assert first[("ModelLatency", "SampleCount")] == len(sent) and first[("ModelLatency", "Maximum")] > 5000
        rows = table(results, "endpoint_metrics")
        assert {r["experiment"] for r in rows} == {"tgi"} and {r["run_id"] for r in rows} == {sent[0]["run_id"]}
        assert {r["namespace"] for r in rows} == {"AWS/SageMaker"}  # the mock publishes no utilization

        again = cli_runner.invoke(cli, ["cloudwatch", str(config), "--results", str(results), *args])
    assert again.exit_code == 0, again.output
    assert f"of run {sent[0]['run_id']}" in again.output
    parts = sorted((results / "raw" / "endpoint_metrics").rglob("part-*.parquet"))
    assert len(parts) == 2  # each fetch is a part file of its own
    fetches = (
        duckdb.connect()
        .execute(f"select distinct fetched_at from read_parquet('{results}/raw/endpoint_metrics/*/*.parquet')")
        .fetchall()
    )
    assert len(fetches) == 2
    assert figures(results) == first and figures(results, "min") == first

    # The marts: the latest fetch, beside what fmb itself sent.
    from fmb.warehouse.build import build, warehouse_path
    from tests.rawdata import query

    build(results)
    marts = {
        (r["metric"], r["stat"]): r
        for r in query(warehouse_path(results), "select * from endpoint_metrics where experiment = 'tgi'")
    }
    invocations = marts[("Invocations", "Sum")]
    assert invocations["value_sum"] == invocations["count_client_requests"] == len(sent)
    assert invocations["fetched_at"] == max(f[0] for f in fetches)
    latency = marts[("ModelLatency", "Average")]
    assert (
        latency["unit"] == "Microseconds"
        and 0 < latency["value_mean"] <= marts[("ModelLatency", "Maximum")]["value_max"]
    )
    # The server's own latency fits inside what fmb measured end to end (microseconds against milliseconds).
    assert latency["value_mean"] / 1000 <= latency["client_e2e_mean_ms"]


@pytest.mark.slow
def test_bedrock_run_has_cloudwatch_figures(tmp_path: Path, cli_runner) -> None:
    config = write(tmp_path, "cw-bedrock", BEDROCK)
    results = tmp_path / "results"
    with moto_server() as moto, mock_server(ttft_ms=5, itl_ms=1, output_tokens=12, cloudwatch_url=moto) as runtime:
        args = aws_args(bedrock_runtime_endpoint_url=runtime, cloudwatch_endpoint_url=moto)
        assert cli_runner.invoke(cli, ["prepare", str(config), "--results", str(results)]).exit_code == 0
        result = cli_runner.invoke(cli, ["collect", str(config), "--results", str(results), "--quiet", *args])
    assert result.exit_code == 0, result.output
    sent = table(results, "requests")
    found = figures(results)
    assert found[("Invocations", "Sum")] == len(sent)
    assert found[("OutputTokenCount", "Sum")] == sum(r["completion_tokens_server"] for r in sent) == 12 * len(sent)
    assert found[("InputTokenCount", "Sum")] == sum(r["prompt_tokens_server"] for r in sent)
    assert found[("TimeToFirstToken", "SampleCount")] == len(sent) and found[("InvocationLatency", "Minimum")] >= 5
    assert ("InvocationThrottles", "Sum") not in found  # nothing throttled, nothing published
    (dimensions,) = {r["dimensions"] for r in table(results, "endpoint_metrics")}
    assert dimensions == '{"ModelId": "us.meta.llama3-1-8b-instruct-v1:0"}'


@pytest.mark.slow
def test_an_unreachable_cloudwatch_is_a_note(tmp_path: Path, cli_runner) -> None:
    config = write(tmp_path, "cw-unreachable", BEDROCK)
    results = tmp_path / "results"
    with mock_server(ttft_ms=2, itl_ms=1, output_tokens=4) as runtime:
        args = aws_args(bedrock_runtime_endpoint_url=runtime, cloudwatch_endpoint_url="http://127.0.0.1:9")
        assert cli_runner.invoke(cli, ["prepare", str(config), "--results", str(results)]).exit_code == 0
        result = cli_runner.invoke(cli, ["collect", str(config), "--results", str(results), *args])
    assert result.exit_code == 0, result.output
    assert "cloudwatch: llama: not fetched (EndpointConnectionError" in result.output
    assert CREDENTIALS["aws_secret_access_key"] not in result.output
    (run,) = table(results, "runs")
    assert run["status"] == "completed"
    assert not (results / "raw" / "endpoint_metrics").exists()
    again = cli_runner.invoke(cli, ["cloudwatch", str(config), "--results", str(results), *args])
    assert again.exit_code == 1 and "cloudwatch: llama: not fetched (EndpointConnectionError" in again.output


def test_fmb_cloudwatch_without_a_run_says_so(tmp_path: Path, cli_runner) -> None:
    config = write(tmp_path, "cw-none", BEDROCK)
    result = cli_runner.invoke(cli, ["cloudwatch", str(config), "--results", str(tmp_path / "results")])
    assert result.exit_code == 1
    assert "no finished run of benchmark 'cw-none'" in result.output and "Traceback" not in result.output
