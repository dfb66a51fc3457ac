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


NEED_ASSIGNMENTS = {"djl.yml", "config-deepseek-r1-vllm-longbench.yml"}


@pytest.mark.parametrize("path", fixture_configs(), ids=lambda p: p.name)
def test_every_fmbench_fixture_loads_or_is_refused_cleanly(path: Path, cli_runner) -> None:
    result = cli_runner.invoke(cli, ["config", "check", str(path), "--results", "/tmp/fmb-unused"])
    assert "Traceback" not in result.output
    # Two samples leave placeholders to FMBench's -A: they are refused until given; every other one loads.
    refused = path.name in NEED_ASSIGNMENTS
    assert result.exit_code == (1 if refused else 0), result.output
    if not refused:
        assert "loads" in result.output
        loaded = load_config(path)
        for exp in loaded.experiments:
            assert f"experiment {exp.name}:" in result.output
    else:
        # The refusal names the file and the placeholders to give with -A.
        assert str(path) in result.output.replace("\n", "")
        assert "placeholders without a value" in result.output and "-A " in result.output


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
    assert (exp.stream, exp.stream_source) == (False, "inference_spec.stream")
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
        "0_setup.ipynb": True,
        "1_generate_data.ipynb": True,
        "2_deploy_model.ipynb": False,
        "3_run_inference.ipynb": True,
        "4_model_metric_analysis.ipynb": True,
        "5_cleanup.ipynb": True,
    }
    new = {
        "0_setup.ipynb": True,
        "1_generate_data.ipynb": True,
        "2_deploy_model.ipynb": False,
        "3_run_inference.ipynb": True,
        "4_get_evaluations.ipynb": True,
        "5_model_metric_analysis.ipynb": True,
        "6_cleanup.ipynb": False,
    }
    steps, notes = enabled_steps(old)
    assert steps == ["prepare", "collect", "build", "report", "cleanup"]
    assert notes == []
    steps, notes = enabled_steps(new)
    assert steps == ["prepare", "collect", "evaluate", "build", "report"]
    assert notes == []
    # Without run_steps every step runs but the accuracy step, which calls judges only when asked for.
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
    path = write_config(
        MINIMAL.replace("api: openai-chat\n", "inference_script: my_own_predictor.py\n").replace(
            "  endpoint_url: http://127.0.0.1:9/v1\n", ""
        )
    )
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
    path = write_config(
        MINIMAL.replace("  payload_files:", "  inference_spec: {parameter_set: nope}\n  payload_files:")
    )
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


def test_every_fmbench_fixture_loads_under_the_strict_rules() -> None:
    """Refusals of FMBench's own samples are only ever for placeholders without a value."""
    for path in fixture_configs():
        try:
            load_config(path)
        except ConfigError as err:
            assert "placeholders without a value" in str(err), f"{path}: {err}"


# --- Config mistakes are refused at load time, naming the key ---------------------------


def _refused(cli_runner, write_config, text: str) -> str:
    """`fmb config check` and `fmb collect` both refuse the config, before any request; the message."""
    path = write_config(text)
    result = _check(cli_runner, path)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    results = path.parent / "results"
    collect = cli_runner.invoke(cli, ["collect", str(path), "--results", str(results), "--quiet"])
    assert collect.exit_code == 1 and "Traceback" not in collect.output
    assert not (results / "raw").exists()  # nothing was sent or written
    return " ".join(result.output.split())


WITH_PARAMETERS = (
    MINIMAL.replace("  payload_files:", "  inference_spec: {parameter_set: p}\n  payload_files:")
    + """
inference_parameters:
  p:
    max_tokens: 10
    options: {stop: ["x"], since: SINCE}
"""
)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2024-01-01", "2024-01-01 is read by YAML as a date"),
        ("2024-01-01T10:00:00Z", "read by YAML as a date"),
        ("2024-13-45", "read by YAML as a date"),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!set {a, b}", "!!set"),
        ("!!omap [{a: 1}]", "!!omap"),
        (".nan", "nan is not a number JSON can carry"),
        ("-.inf", "-inf is not a number JSON can carry"),
    ],
)
def test_values_json_cannot_carry_are_refused_with_their_key(cli_runner, write_config, value, expected) -> None:
    out = _refused(cli_runner, write_config, WITH_PARAMETERS.replace("SINCE", value))
    assert "inference_parameters.p.options.since" in out
    assert expected in out
    if "date" in expected:
        assert "write it in quotes" in out


def test_nul_characters_are_refused_anywhere(cli_runner, write_config) -> None:
    out = _refused(cli_runner, write_config, MINIMAL + 'pricing: "~\\u0000/pricing.yml"\n')
    assert "pricing: the text holds a NUL character (U+0000)" in out
    out = _refused(
        cli_runner,
        write_config,
        MINIMAL.replace("  payload_files:", '  headers: {X-Key: "s3cr3t\\u0000"}\n  payload_files:'),
    )
    assert "experiments[0] (e1).headers.X-Key: the text holds a NUL character" in out and "s3cr3t" not in out


def test_quoted_date_is_text(write_config) -> None:
    loaded = load_config(write_config(WITH_PARAMETERS.replace("SINCE", "'2024-01-01'")))
    assert loaded.experiments[0].parameters["options"]["since"] == "2024-01-01"


def test_non_text_keys_and_self_referring_aliases(cli_runner, write_config) -> None:
    out = _refused(cli_runner, write_config, WITH_PARAMETERS.replace("since: SINCE", "2024-01-01: x"))
    assert "inference_parameters.p.options.2024-01-01: the key 2024-01-01 is not text" in out
    out = _refused(cli_runner, write_config, WITH_PARAMETERS.replace('{stop: ["x"], since: SINCE}', "&a [1, *a]"))
    assert "inference_parameters.p.options[1]: a YAML alias refers to a value that contains it" in out


def test_scalars_python_cannot_build_are_yaml_errors(cli_runner, write_config) -> None:
    out = _refused(cli_runner, write_config, WITH_PARAMETERS.replace("SINCE", "1" * 5000))
    assert "line 14, column 35: this is not valid YAML" in out and "cannot be read as an integer" in out
    out = _refused(cli_runner, write_config, WITH_PARAMETERS.replace("SINCE", "!!bool perhaps"))
    assert "cannot be read as a boolean" in out
    out = _refused(cli_runner, write_config, WITH_PARAMETERS.replace("SINCE", "[" * 3000 + "]" * 3000))
    assert "nests lists or mappings too deeply" in out


def test_aliases_that_expand_without_end_are_refused(cli_runner, write_config) -> None:
    laughs = "\n".join(
        [MINIMAL, "lol:", "  a: &a [x, x, x, x, x, x, x, x, x, x]"]
        + [f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(6)]
    )
    out = _refused(cli_runner, write_config, laughs)
    assert "more than 100,000 values" in out and "aliases" in out


@pytest.mark.parametrize("where", ["headers", "inference_spec.headers"])
@pytest.mark.parametrize(
    "value, expected",
    [
        ('"Bearer s3cr3t-token\\r\\nX-Evil: 1"', "a line break (CR or LF)"),
        ('"s3cr3t-token\\n"', "a line break (CR or LF)"),
        ('"s3cr3t-token\\u0007"', "a control character (U+0007)"),
    ],
)
def test_header_values_with_control_characters(cli_runner, write_config, where, value, expected) -> None:
    if where == "headers":
        text = MINIMAL.replace("  payload_files:", f"  headers: {{Authorization: {value}}}\n  payload_files:")
    else:
        text = MINIMAL.replace(
            "  payload_files:", f"  inference_spec: {{headers: {{Authorization: {value}}}}}\n  payload_files:"
        )
    out = _refused(cli_runner, write_config, text)
    assert f"experiments[0] (e1).{where}" in out
    assert f"the value of header 'Authorization' holds {expected}" in out
    assert "s3cr3t" not in out  # header values are secret


@pytest.mark.parametrize(
    "header, expected",
    [
        ('"X-A\\r\\nB": v', "'X-A\\r\\nB' is not an HTTP header name"),
        ('"X A": v', "'X A' is not an HTTP header name"),
        ("X-A: yes", "header 'X-A' needs text, got true/false"),
        ("X-A: [1, 2]", "header 'X-A' needs one value of text, got a list"),
        ("X-A:", "header 'X-A' needs one value of text, got nothing"),
    ],
)
def test_header_names_and_value_types(cli_runner, write_config, header, expected) -> None:
    text = MINIMAL.replace("  payload_files:", f"  headers:\n    {header}\n  payload_files:")
    out = _refused(cli_runner, write_config, text)
    assert "experiments[0] (e1).headers" in out and expected in out


@pytest.mark.parametrize(
    "levels, expected",
    [
        ("[true]", "concurrency_levels[0]: expected a whole number, got true/false"),
        ("[1, yes]", "concurrency_levels[1]: expected a whole number, got true/false"),
        ("[2.5]", "concurrency_levels[0]: expected a whole number, got 2.5"),
        ("[2.0]", "concurrency_levels[0]: expected a whole number, got 2"),
        ('["4"]', "concurrency_levels[0]: expected a whole number, got text"),
        ("[0]", "concurrency_levels: concurrency levels must be 1 or more, got [0]"),
    ],
)
def test_concurrency_levels_must_be_whole_numbers(cli_runner, write_config, levels, expected) -> None:
    out = _refused(
        cli_runner, write_config, MINIMAL.replace("concurrency_levels: [1, 2]", f"concurrency_levels: {levels}")
    )
    assert f"experiments[0] (e1).{expected}" in out


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("warmup_requests", "true", "expected a whole number, got true/false"),
        ("request_timeout_s", "true", "expected a number, got true/false"),
        ("request_timeout_s", "'30'", "expected a number, got text"),
        ("instance_count", "1.5", "expected a whole number, got 1.5"),
        ("instance_count", str(2**64), "the number is too large"),
    ],
)
def test_other_numbers_are_not_coerced(cli_runner, write_config, key, value, expected) -> None:
    out = _refused(cli_runner, write_config, MINIMAL.replace("  payload_files:", f"  {key}: {value}\n  payload_files:"))
    assert f"experiments[0] (e1).{key}: {expected}" in out


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://[::1/v1", "it cannot be parsed (Invalid IPv6 URL)"),
        ("http:///v1", "it names no host"),
        ("http://host:99999/v1", "its port is not valid"),
        ("http://host:abc/v1", "its port is not valid"),
        ("http://host:0/v1", "port 0"),
        ("ftp://host/v1", "it must start with http:// or https://"),
        ("localhost:8000/v1", "it must start with http:// or https://"),
        ("'http://host /v1'", "a space"),
        ("http://[::zz]/v1", "it cannot be parsed"),
        ("http://a..b/v1", "is not a host name"),
    ],
)
def test_endpoint_url_must_be_a_valid_http_url(cli_runner, write_config, url, expected) -> None:
    out = _refused(
        cli_runner, write_config, MINIMAL.replace("endpoint_url: http://127.0.0.1:9/v1", f"endpoint_url: {url}")
    )
    assert "experiments[0] (e1).endpoint_url:" in out and "is not a valid http(s) URL" in out
    assert expected in out


def test_an_api_key_with_a_line_break_is_refused(cli_runner, write_config, monkeypatch) -> None:
    monkeypatch.setenv("FMB_TEST_KEY", "sk-s3cr3t\n")
    out = _refused(
        cli_runner, write_config, MINIMAL.replace("  payload_files:", "  api_key_env: FMB_TEST_KEY\n  payload_files:")
    )
    assert "experiments[0] (e1).api_key_env: the environment variable FMB_TEST_KEY holds a line break" in out
    assert "s3cr3t" not in out


def test_url_errors_do_not_show_the_password(cli_runner, write_config) -> None:
    out = _refused(
        cli_runner, write_config, MINIMAL.replace("http://127.0.0.1:9/v1", "http://me:hunter2secret@[::1/v1")
    )
    assert "hunter2secret" not in out and "***@" in out


def test_container_url_in_ep_name_and_ready_url_are_checked(cli_runner, write_config) -> None:
    text = MINIMAL.replace(
        "  api: openai-chat\n  endpoint_url: http://127.0.0.1:9/v1\n",
        "  inference_script: ec2_predictor.py\n  inference_spec: {container_type: tgi}\n"
        "  ep_name: http://localhost:99999/generate\n",
    )
    assert "experiments[0] (e1).ep_name: 'http://localhost:99999/generate' is not a valid" in _refused(
        cli_runner, write_config, text
    )
    local = "  local: {server: command, command: [x], ready_url: 'http://127.0.0.1:{port}/PATH'}\n  payload_files:"
    text = MINIMAL.replace("  payload_files:", local.replace("PATH", "he alth"))
    assert "experiments[0] (e1).local.ready_url" in _refused(cli_runner, write_config, text)
    # {port} is filled when the server starts, so it is a valid port here.
    ok = MINIMAL.replace("  payload_files:", local.replace("PATH", "health"))
    assert _check(cli_runner, write_config(ok)).exit_code == 0


# --- Documented bounds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, key, bound, why",
    [
        (
            MINIMAL.replace("[1, 2]", "[1, 1000000000]"),
            "experiments[0] (e1).concurrency_levels[1]",
            "4,096",
            "file descriptor",
        ),
        (
            MINIMAL.replace("  payload_files:", "  warmup_requests: 1000000000\n  payload_files:"),
            "experiments[0] (e1).warmup_requests",
            "10,000",
            "not measured",
        ),
        (
            MINIMAL + "datasets: {min_iters_per_combination: 1000000000, max_iters_per_combination: 1000000000}\n",
            "datasets.min_iters_per_combination",
            "100,000",
            "runs for days",
        ),
        (
            MINIMAL.replace("  payload_files:", "  request_timeout_s: 86400\n  payload_files:"),
            "experiments[0] (e1).request_timeout_s",
            "3,600 s",
            "stuck endpoint",
        ),
        (
            MINIMAL.replace("  payload_files:", "  max_attempts: 50\n  payload_files:"),
            "experiments[0] (e1).max_attempts",
            "20",
            "10 minutes",
        ),
        (
            MINIMAL.replace("  payload_files:", "  retry_backoff_s: 600\n  payload_files:"),
            "experiments[0] (e1).retry_backoff_s",
            "30 s",
            "never exceed 30 s",
        ),
        (
            MINIMAL.replace("[1, 2]", "[4096]")
            + "datasets: {min_iters_per_combination: 1000, max_iters_per_combination: 1000}\n",
            "experiments[0] (e1).concurrency_levels",
            "1,000,000",
            "in memory",
        ),
        (
            MINIMAL + "s3_read_data: {source_data_files: ['synthetic:longbench']}\n"
            "datasets: {synthetic: {records: 1000000, max_context_words: 1000}}\n",
            "datasets.synthetic",
            "50,000,000",
            "held in memory",
        ),
    ],
)
def test_bounds_name_the_key_the_limit_and_why(cli_runner, write_config, text, key, bound, why) -> None:
    out = _refused(cli_runner, write_config, text)
    assert f"{key}:" in out and f"limit of {bound}" in out and why in out


def test_bounds_are_inclusive(write_config) -> None:
    text = (
        MINIMAL.replace("[1, 2]", "[4096]").replace(
            "  payload_files:", "  warmup_requests: 10000\n  request_timeout_s: 3600\n  payload_files:"
        )
        + "datasets: {min_iters_per_combination: 100, max_iters_per_combination: 100000}\n"
    )
    exp = load_config(write_config(text)).experiments[0]
    assert exp.spec.concurrency_levels == [4096] and exp.spec.warmup_requests == 10000


# --- Files fmb writes stay in their folder ----------------------------------------------------

FILTER = (
    MINIMAL
    + """
datasets:
  filters:
  - {language: LANG, min_length_in_tokens: 1, max_length_in_tokens: 500, payload_file: "FILE"}
"""
)


@pytest.mark.parametrize(
    "lang, name, expected",
    [
        ("en", "../x.jsonl", "folder separator"),
        ("en", "/tmp/x.jsonl", "folder separator"),
        ("en", "sub/x.jsonl", "folder separator"),
        ("en", "..\\\\x.jsonl", "folder separator"),
        ("en", "..", "is a folder, not a file"),
        ("en", "", "it is empty"),
        ("../../etc", "{lang}.jsonl", "folder separator"),
        ("en", "x\\u0007.jsonl", "a control character (U+0007)"),
        ("en", "x" * 300, "300 bytes long"),
    ],
)
def test_payload_files_are_written_inside_the_payload_folder(cli_runner, write_config, lang, name, expected) -> None:
    out = _refused(cli_runner, write_config, FILTER.replace("LANG", lang).replace("FILE", name))
    assert "datasets.filters[0].payload_file:" in out and expected in out
    assert "a payload file is a file name in fmb's payload folder, not a path" in out


def test_experiment_payload_files_are_names_in_the_payload_folder(cli_runner, write_config) -> None:
    out = _refused(cli_runner, write_config, MINIMAL.replace("[payload_en_1-500.jsonl]", "[../../secret.jsonl]"))
    assert "experiments[0] (e1).payload_files: '../../secret.jsonl'" in out and "folder separator" in out


def test_prepare_checks_the_payload_path_where_it_writes(write_config, tmp_path: Path) -> None:
    from fmb.errors import PrepareError
    from fmb.paths import ResultsLayout
    from fmb.prepare.payloads import prepare

    loaded = load_config(
        write_config(
            FILTER.replace("LANG", "en").replace("FILE", "ok.jsonl")
            + "s3_read_data: {source_data_files: ['synthetic:longbench']}\n"
        )
    )
    loaded.config.datasets.filters[0].payload_file = "../escaped.jsonl"  # past the schema, as a bug might
    with pytest.raises(PrepareError, match="cannot be written"):
        prepare(loaded, ResultsLayout(tmp_path / "results"))
    assert not (tmp_path / "results" / "payloads" / "escaped.jsonl").exists()


@pytest.mark.parametrize(
    "text, key, expected",
    [
        (MINIMAL.replace("name: t", "name: '  '"), "general.name", "must not be empty"),
        (MINIMAL.replace("name: e1", "name: ''"), "experiments[0] ().name", "must not be empty"),
        (
            MINIMAL.replace("name: e1", "name: " + "\u00e9" * 100),
            "experiments[0]",
            "600 characters once percent-encoded",
        ),
    ],
)
def test_names_that_become_folders(cli_runner, write_config, text, key, expected) -> None:
    out = _refused(cli_runner, write_config, text)
    assert key in out and expected in out


def test_names_are_slugged_or_encoded_into_folders(tmp_path: Path) -> None:
    from fmb.paths import ResultsLayout

    layout = ResultsLayout(tmp_path)
    for name in ["../../x", "..", "/etc/passwd", "a/../../b", "\\..\\x"]:
        for path in (layout.payload_dir(name), layout.prompts_dir(name), layout.requests_dir(name, "r")):
            assert path.resolve().is_relative_to(tmp_path.resolve()), path
            assert ".." not in path.relative_to(tmp_path).parts


# --- Streaming follows FMBench ---------------------------------------------------------------


@pytest.mark.parametrize(
    "keys, stream, source",
    [
        ("", False, "default (FMBench: not streamed)"),
        ("  inference_spec: {stream: true}\n", True, "inference_spec.stream"),
        ("  inference_spec: {stream: False}\n", False, "inference_spec.stream"),
        ("  inference_spec: {parameter_set: p}\n", False, "inference_parameters.p.stream"),
        ("  inference_spec: {parameter_set: p, stream: true}\n", True, "inference_spec.stream"),
        ("  stream: true\n  inference_spec: {parameter_set: p, stream: false}\n", True, "stream"),
        ("  stream: false\n  inference_spec: {stream: true}\n", False, "stream"),
    ],
)
def test_stream_setting_and_its_source(write_config, keys, stream, source) -> None:
    text = (
        MINIMAL.replace("  payload_files:", keys + "  payload_files:") + "inference_parameters:\n  p: {stream: false}\n"
    )
    exp = load_config(write_config(text)).experiments[0]
    assert (exp.stream, exp.stream_source) == (stream, source)


def test_fmbench_ollama_config_says_stream_in_its_parameters(fmbench_fixtures: Path) -> None:
    loaded = load_config(
        fmbench_fixtures / "configs" / "llama3.1" / "8b" / "config-ec2-llama3-1-8b-g6e-2xlarge-byoe-ollama.yml"
    )
    (exp,) = loaded.experiments
    assert (exp.backend, exp.stream, exp.stream_source) == ("ollama", False, "inference_parameters.ec2_ollama.stream")


def test_a_non_boolean_stream_parameter_is_sent_but_does_not_decide(write_config) -> None:
    text = MINIMAL.replace("  payload_files:", "  inference_spec: {parameter_set: p}\n  payload_files:")
    exp = load_config(write_config(text + "inference_parameters:\n  p: {stream: 'yes please'}\n")).experiments[0]
    assert (exp.stream, exp.stream_source) == (False, "default (FMBench: not streamed)")


def test_config_check_shows_the_request_mode(cli_runner, write_config) -> None:
    text = MINIMAL + MINIMAL.split("experiments:\n")[1].replace("name: e1", "name: e2").replace(
        "  payload_files:", "  inference_spec: {stream: true}\n  payload_files:"
    )
    result = cli_runner.invoke(cli, ["config", "check", str(write_config(text))], terminal_width=300)
    assert result.exit_code == 0, result.output
    e1, e2 = result.output.split("experiment e2:")
    assert (
        "request mode: not streamed (FMBench's default: no stream key is set); TTFT and time per output token "
        "are not measured; set stream: true in the experiment to measure them" in e1
    )
    assert "request mode: streamed (from inference_spec.stream)" in e2


def test_fmb_example_configs_stream() -> None:
    from fmb.paths import BUNDLED_CONFIGS

    for path in sorted(BUNDLED_CONFIGS.glob("*.yml")):
        if path.name in ("pricing.yml", "model_eval_all_info.yml"):  # not benchmark configs
            continue
        for exp in load_config(path).experiments:
            assert (exp.stream, exp.stream_source) == (True, "stream"), f"{path.name}: {exp.name}"
