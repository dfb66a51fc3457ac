"""FMBench's own sample configs, unchanged, end to end against local AWS servers.

Only `-A` overrides are given: the AWS endpoints, test credentials, and `read_tmpdir` for a
folder holding LongBench-format source files under FMBench's names (local copies come before
the hub, so no `hf:` entry is fetched) and FMBench's prompt templates.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from fmb.cli import cli
from fmb.collector.mock.process import mock_server
from fmb.config import load_config
from tests.aws_servers import CREDENTIALS, bring_endpoint, created_resources, moto_server, seed_jumpstart
from tests.test_aws import no_real_aws  # noqa: F401 - the same isolation from the machine's AWS settings

pytestmark = pytest.mark.slow  # servers in subprocesses, dbt builds or a real model

LONGBENCH_FILES = ["2wikimqa_e", "2wikimqa", "hotpotqa_e", "hotpotqa", "narrativeqa", "triviaqa_e", "triviaqa"]
# Prompt lengths (by FMBench's 750 words = 1000 tokens rule) inside every filter the sample configs use.
TARGET_TOKENS = [120, 300, 700, 920, 1500, 2500, 3200, 3500, 3700, 3900, 4500, 5500]


@pytest.fixture(scope="module")
def read_dir(tmp_path_factory: pytest.TempPathFactory, fmbench_fixtures_module: Path) -> Path:
    return write_read_dir(tmp_path_factory.mktemp("fmbench-read"), fmbench_fixtures_module)


def write_read_dir(root: Path, fmbench_fixtures: Path) -> Path:
    """Source data named as FMBench's configs list it, and FMBench's prompt templates, in ``root``."""
    source = root / "source_data"
    source.mkdir()
    for i, name in enumerate(LONGBENCH_FILES):
        with (source / f"{name}.jsonl").open("w") as fh:
            for j, tokens in enumerate(TARGET_TOKENS):
                words = max(int(tokens * 0.75) - 110, 5)  # the templates add about 100 words
                record = {
                    "input": f"What is the code name of project {i}-{j}?",
                    "context": " ".join(["lorem"] * words) + f" The code name of project {i}-{j} is Zorvia{j}.",
                    "answers": [f"Zorvia{j}"],
                    "length": words,
                    "dataset": name,
                    "language": "en",
                    "all_classes": None,
                    "_id": f"{name}-{j}",
                }
                fh.write(json.dumps(record) + "\n")
    shutil.copytree(fmbench_fixtures / "prompt_template", root / "prompt_template")
    return root


@pytest.fixture(scope="module")
def fmbench_fixtures_module() -> Path:
    from tests.conftest import SHARED_FIXTURES

    path = SHARED_FIXTURES / "fmbench"
    if not path.is_dir():
        pytest.skip(f"FMBench fixture configs not found at {path} (they sit beside the checkout in CI)")
    return path


def args(read_dir: Path, **endpoints: str) -> list[str]:
    out = ["-A", f"read_tmpdir={read_dir}"]
    for key, value in {**endpoints, **CREDENTIALS}.items():
        out += ["-A", f"{key}={value}"]
    return out


def check_complete(results: Path, config: Path, read_dir: Path) -> None:
    """Every experiment of the config has cells, and the report names every one of them."""
    loaded = load_config(config, {"read_tmpdir": str(read_dir)})
    con = duckdb.connect(str(results / "warehouse.duckdb"), read_only=True)
    cells = con.execute(
        "select experiment, payload_file, concurrency, count_requests, count_successful_requests from cells"
    ).fetchall()
    recommendations = con.execute("select count(*) from recommendations").fetchall()[0][0]
    con.close()
    expected = {
        (e.name, pf, c) for e in loaded.experiments for pf in e.spec.payload_files for c in e.spec.concurrency_levels
    }
    assert {(e, p, c) for e, p, c, _, _ in cells} == expected
    assert all(ok == n for _, _, _, n, ok in cells)
    assert recommendations > 0
    report = (results / "reports").glob("*/report.md")
    text = next(report).read_text()
    for exp in loaded.experiments:
        assert f"### {exp.name}" in text


@pytest.mark.parametrize(
    "name", ["config-bedrock-llama3-1-8b-streaming.yml", "config-claude-3-5-sonnet-v2.yml", "config-bedrock.yml"]
)
def test_bedrock_sample_configs(
    fmbench_fixtures_module: Path, read_dir: Path, tmp_path: Path, cli_runner, name: str
) -> None:
    config = fmbench_fixtures_module / "configs" / "bedrock" / name
    results = tmp_path / "results"
    # The samples run FMBench's accuracy step too: the runtime answers the judges' prompts with verdicts.
    with mock_server(ttft_ms=5, itl_ms=0.5, output_tokens=20, reply="judge") as runtime:
        result = cli_runner.invoke(
            cli,
            [
                "run",
                str(config),
                "--results",
                str(results),
                "--quiet",
                *args(read_dir, bedrock_runtime_endpoint_url=runtime),
            ],
            terminal_width=200,
        )
    assert result.exit_code == 0, result.output
    check_complete(results, config, read_dir)


def test_sagemaker_bring_your_own_endpoint_sample(
    fmbench_fixtures_module: Path, read_dir: Path, tmp_path: Path, cli_runner
) -> None:
    config = fmbench_fixtures_module / "configs" / "byoe" / "config-model-byo-sagemaker-endpoint.yml"
    results = tmp_path / "results"
    with moto_server() as moto, mock_server(ttft_ms=5, itl_ms=0.5, output_tokens=20) as runtime:
        bring_endpoint(moto, "<your-endpoint-name>")  # the name the sample config uses
        before = created_resources(moto)
        result = cli_runner.invoke(
            cli,
            [
                "run",
                str(config),
                "--results",
                str(results),
                "--quiet",
                *args(read_dir, sagemaker_endpoint_url=moto, sagemaker_runtime_endpoint_url=runtime),
            ],
            terminal_width=200,
        )
        assert result.exit_code == 0, result.output
        assert created_resources(moto) == before  # deploy: no, so nothing was created or removed
    check_complete(results, config, read_dir)


@pytest.mark.parametrize(
    "path", ["llama3/8b/config-llama3-8b-g5-streaming.yml", "mistral/config-mistral-7b-tgi-g5.yml"]
)
def test_sagemaker_deploy_samples_stop_cleanly_where_moto_refuses_their_instances(
    fmbench_fixtures_module: Path, read_dir: Path, tmp_path: Path, cli_runner, path: str
) -> None:
    """moto accepts no ml.g5/inf2/p4d instance: the run stops at deploy with a clear message, leaving nothing."""
    config = fmbench_fixtures_module / "configs" / path
    results = tmp_path / "results"
    with moto_server() as moto, mock_server() as runtime:
        if pytest.importorskip("sagemaker"):
            # JumpStart's specs for the sample's models, so that the SDK gets as far as moto's refusal.
            loaded = load_config(config)
            seed_jumpstart(moto, sorted({e.spec.model_id for e in loaded.experiments if e.spec.model_id}))
        before = created_resources(moto)
        result = cli_runner.invoke(
            cli,
            [
                "run",
                str(config),
                "--results",
                str(results),
                "--quiet",
                *args(
                    read_dir, sagemaker_endpoint_url=moto, s3_endpoint_url=moto, sagemaker_runtime_endpoint_url=runtime
                ),
            ],
            terminal_width=200,
        )
        assert result.exit_code == 1
        assert "Traceback" not in result.output
        assert "ValidationException" in result.output and "ml.g5" in result.output
        assert created_resources(moto) == before
    assert (results / "payloads").is_dir()  # prepare ran first
