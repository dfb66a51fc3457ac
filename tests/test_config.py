"""Loading FMBench configs: placeholders, schema, back ends, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmb.cli import cli
from fmb.config import load_config
from fmb.config.placeholders import fill
from fmb.config.steps import enabled_steps
from fmb.errors import ConfigError

MINIMAL = """
general:
  name: t
experiments:
- name: e1
  api: openai-chat
  endpoint_url: http://127.0.0.1:9/v1
  payload_files: [payload_en_1-500.jsonl]
  concurrency_levels: [1, 2]
"""


def fixture_configs() -> list[Path]:
    from tests.conftest import SHARED_FIXTURES

    root = SHARED_FIXTURES / "fmbench" / "configs"
    skip = {"pricing.yml", "model_eval_all_info.yml"}
    return sorted(p for p in root.rglob("*.yml") if p.name not in skip) if root.is_dir() else []


@pytest.mark.parametrize("path", fixture_configs(), ids=lambda p: p.name)
def test_every_fmbench_fixture_loads_or_is_refused_cleanly(path: Path, cli_runner) -> None:
    result = cli_runner.invoke(cli, ["config", "check", str(path), "--results", "/tmp/fmb-unused"])
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        assert "loads" in result.output
        loaded = load_config(path)
        for exp in loaded.experiments:
            assert f"experiment {exp.name}:" in result.output
    else:
        # A refusal names the file and what is missing or unsupported.
        assert str(path) in result.output.replace("\n", "")
        assert "placeholder" in result.output or "not" in result.output


def test_fixture_with_placeholders_loads_once_they_are_given(fmbench_fixtures: Path) -> None:
    path = fmbench_fixtures / "configs" / "deepseek" / "config-deepseek-r1-vllm-longbench.yml"
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "{model_id}" in str(err.value) and "-A model_id=VALUE" in str(err.value)
    loaded = load_config(
        path, {"model_id": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "instance_type": "g6e.xlarge", "cli_params": "x"}
    )
    (exp,) = loaded.experiments
    assert exp.name == "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"
    assert exp.backend == "openai-completions"  # ec2_predictor.py with container_type vllm
    assert exp.endpoint == "http://localhost:8000/v1/completions"
    assert exp.spec.instance_type == "g6e.xlarge"


def test_fmbench_keys_are_typed(fmbench_fixtures: Path) -> None:
    loaded = load_config(fmbench_fixtures / "configs" / "llama2" / "7b" / "config-llama2-7b-g5-quick.yml")
    cfg = loaded.config
    assert cfg.datasets.min_iters_per_combination == 5
    assert cfg.datasets.max_iters_per_combination == 105
    assert cfg.datasets.ground_truth_col_key == "answers"
    assert cfg.datasets.filters[0].min_length_in_tokens == 1
    assert cfg.report.title.startswith("Performance benchmarking results for Llama2-7b")
    exp = loaded.experiments[0]
    assert exp.backend == "sagemaker"
    assert exp.stream is False  # inference_spec.stream: False wins over fmb's default
    assert exp.parameters["max_new_tokens"] == 100
    assert exp.spec.env["SM_NUM_GPUS"] == "1"
    assert cfg.aws.region == "us-east-1"  # {region} filled with a local default, no AWS call


def test_region_comes_from_the_environment(fmbench_fixtures: Path, monkeypatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    loaded = load_config(fmbench_fixtures / "configs" / "mistral" / "config-mistral-7b-tgi-g5.yml")
    assert loaded.config.aws.region == "eu-west-3"
    assert "eu-west-3" in (loaded.experiments[0].spec.image_uri or "")


def test_assignments_override_builtin_placeholders(fmbench_fixtures: Path) -> None:
    loaded = load_config(
        fmbench_fixtures / "configs" / "mistral" / "config-mistral-7b-tgi-g5.yml",
        {"region": "ap-south-1", "write_bucket": "my-bucket"},
    )
    assert loaded.config.aws.region == "ap-south-1"
    assert loaded.config.aws.bucket == "my-bucket"


def test_fill_keeps_payload_name_placeholders_and_escapes() -> None:
    text, unfilled = fill(
        "a: {x}\nb: payload_{lang}_{min}-{max}.jsonl\nc: '{{literal}}'\n# {comment_only}\nd: {missing}\n"
        "e: {f: {g: 1}}\n",
        {"x": "1"},
    )
    assert "a: 1" in text
    assert "payload_{lang}_{min}-{max}.jsonl" in text
    assert "'{literal}'" in text
    assert "e: {f: {g: 1}}" in text
    assert [(u.name, u.line) for u in unfilled] == [("missing", 5)]


def test_payload_file_patterns_are_filled_per_filter(write_config) -> None:
    path = write_config(
        MINIMAL
        + """
datasets:
  filters:
  - {language: en, min_length_in_tokens: 1, max_length_in_tokens: 500, payload_file: "payload_{lang}_{min}-{max}.jsonl"}
"""
    )
    loaded = load_config(path)
    assert loaded.config.datasets.filters[0].file_name() == "payload_en_1-500.jsonl"


def test_fmb_defaults(write_config) -> None:
    exp = load_config(write_config(MINIMAL)).experiments[0]
    assert exp.stream is False  # FMBench's default: not streamed
    assert exp.stream_source == "default (FMBench: not streamed)"
    assert exp.spec.request_timeout_s == 120
    assert exp.spec.warmup_requests == 0
    assert exp.instance_count == 1
    assert exp.backend == "openai-chat"


def test_run_steps_old_and_new_names() -> None:
    old = {
        "0_setup.ipynb": True, "1_generate_data.ipynb": True, "2_deploy_model.ipynb": False,
        "3_run_inference.ipynb": True, "4_model_metric_analysis.ipynb": True, "5_cleanup.ipynb": True,
    }
    new = {
        "0_setup.ipynb": True, "1_generate_data.ipynb": True, "2_deploy_model.ipynb": False,
        "3_run_inference.ipynb": True, "4_get_evaluations.ipynb": True, "5_model_metric_analysis.ipynb": True,
        "6_cleanup.ipynb": False,
    }
    steps, notes = enabled_steps(old)
    assert steps == ["prepare", "collect", "build", "report", "cleanup"]
    assert notes == []
    steps, notes = enabled_steps(new)
    assert steps == ["prepare", "collect", "build", "report"]
    assert any("4_get_evaluations" in n for n in notes)
    assert enabled_steps({})[0] == ["prepare", "deploy", "collect", "build", "report", "cleanup"]


def _check(cli_runner, path: Path):
    return cli_runner.invoke(cli, ["config", "check", str(path)])


def test_yaml_syntax_error_is_one_paragraph(cli_runner, write_config) -> None:
    path = write_config("general:\n  name: x\nexperiments:\n  - name: [unclosed\n")
    result = _check(cli_runner, path)
    assert result.exit_code == 1
    assert "not valid YAML" in result.output and "starts on line 4" in result.output
    assert "Traceback" not in result.output


def test_yaml_indentation_error_names_its_line(cli_runner, write_config) -> None:
    result = _check(cli_runner, write_config("general:\n  name: x\n experiments: []\n"))
    assert result.exit_code == 1
    assert "line 3" in result.output


def test_missing_experiments_section(cli_runner, write_config) -> None:
    result = _check(cli_runner, write_config("general:\n  name: x\n"))
    assert result.exit_code == 1
    assert "experiments section is missing" in result.output


def test_unknown_back_end(cli_runner, write_config) -> None:
    path = write_config(MINIMAL.replace("api: openai-chat\n", "inference_script: my_own_predictor.py\n").replace(
        "  endpoint_url: http://127.0.0.1:9/v1\n", ""))
    result = _check(cli_runner, path)
    assert result.exit_code == 1
    assert "experiments[0] (e1).inference_script" in result.output
    assert "'my_own_predictor.py' is not a back end fmb knows" in result.output


def test_bad_values_name_the_key_path(cli_runner, write_config) -> None:
    path = write_config(MINIMAL.replace("concurrency_levels: [1, 2]", "concurrency_levels: [1, zero]"))
    result = _check(cli_runner, path)
    assert result.exit_code == 1
    assert "experiments[0] (e1).concurrency_levels[1]" in result.output
    assert '"zero"' in result.output


def test_missing_parameter_set(cli_runner, write_config) -> None:
    path = write_config(MINIMAL.replace("  payload_files:", "  inference_spec: {parameter_set: nope}\n  payload_files:"))
    result = _check(cli_runner, path)
    assert result.exit_code == 1
    assert "parameter set 'nope' is not a section of inference_parameters" in result.output


def test_missing_file(cli_runner, tmp_path: Path) -> None:
    result = _check(cli_runner, tmp_path / "nope.yml")
    assert result.exit_code == 1
    assert "no such file" in result.output


def test_config_check_summary(cli_runner, write_config) -> None:
    result = cli_runner.invoke(cli, ["config", "check", str(write_config(MINIMAL))], terminal_width=200)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "openai-chat" in out and "http://127.0.0.1:9/v1" in out
    assert "concurrency levels: 1, 2" in out
    assert "not prepared" in out


# --- Streaming follows FMBench ---------------------------------------------------------------

@pytest.mark.parametrize("keys, stream, source", [
    ("", False, "default (FMBench: not streamed)"),
    ("  inference_spec: {stream: true}\n", True, "inference_spec.stream"),
    ("  inference_spec: {stream: False}\n", False, "inference_spec.stream"),
    ("  inference_spec: {parameter_set: p}\n", False, "inference_parameters.p.stream"),
    ("  inference_spec: {parameter_set: p, stream: true}\n", True, "inference_spec.stream"),
    ("  stream: true\n  inference_spec: {parameter_set: p, stream: false}\n", True, "stream"),
    ("  stream: false\n  inference_spec: {stream: true}\n", False, "stream"),
])
def test_stream_setting_and_its_source(write_config, keys, stream, source) -> None:
    text = MINIMAL.replace("  payload_files:", keys + "  payload_files:") + "inference_parameters:\n  p: {stream: false}\n"
    exp = load_config(write_config(text)).experiments[0]
    assert (exp.stream, exp.stream_source) == (stream, source)


def test_a_non_boolean_stream_parameter_is_sent_but_does_not_decide(write_config) -> None:
    text = MINIMAL.replace("  payload_files:", "  inference_spec: {parameter_set: p}\n  payload_files:")
    exp = load_config(write_config(text + "inference_parameters:\n  p: {stream: 'yes please'}\n")).experiments[0]
    assert (exp.stream, exp.stream_source) == (False, "default (FMBench: not streamed)")


def test_config_check_shows_the_request_mode(cli_runner, write_config) -> None:
    text = MINIMAL + MINIMAL.split("experiments:\n")[1].replace("name: e1", "name: e2").replace(
        "  payload_files:", "  inference_spec: {stream: true}\n  payload_files:")
    result = cli_runner.invoke(cli, ["config", "check", str(write_config(text))], terminal_width=300)
    assert result.exit_code == 0, result.output
    e1, e2 = result.output.split("experiment e2:")
    assert "request mode: not streamed (FMBench's default: no stream key is set); TTFT and time per output token " \
           "are not measured; set stream: true in the experiment to measure them" in e1
    assert "request mode: streamed (from inference_spec.stream)" in e2


def test_fmb_example_configs_stream() -> None:
    from fmb.paths import BUNDLED_CONFIGS

    for path in sorted(BUNDLED_CONFIGS.glob("*.yml")):
        if path.name == "pricing.yml":
            continue
        for exp in load_config(path).experiments:
            assert (exp.stream, exp.stream_source) == (True, "stream"), f"{path.name}: {exp.name}"
