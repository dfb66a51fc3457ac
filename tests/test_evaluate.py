"""The accuracy step (`fmb evaluate`): judges with known behaviour, so the verdicts are known in advance.

The candidates are mock servers that either echo the prompt (whose passage holds the
answer: every answer is right) or say " w0 w1 ..." (every answer is wrong); the judges
are mock servers that answer "correct" exactly when the candidate's answer contains the
ground truth. Judges are reached as OpenAI-compatible servers and through the Bedrock
runtime API (the mock's AWS event streams), with the real client code paths.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import duckdb
import pytest

from fmb.cli import cli
from fmb.collector.mock.behaviour import judge_parts, judge_reply
from fmb.collector.mock.process import mock_server
from fmb.config import load_config
from fmb.errors import ConfigError
from fmb.evaluate.settings import load_settings, template_text
from fmb.evaluate.step import fill_template, ground_truth_text, parse_verdict

# -- fast: parsing, templates, settings ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "verdict", "explanation"),
    [
        ('{"verdict": "correct", "explanation": "same city"}', "correct", "same city"),
        ('Sure, here it is:\n{"verdict": "Incorrect", "explanation": "no"} thanks', "incorrect", "no"),
        ('{"explanation": "x", "verdict": "correct"', "correct", None),  # cut short: the verdict still reads
        ("The answer is correct.", None, None),  # no JSON: no verdict, never a guess
        ('{"verdict": "maybe"}', None, None),
    ],
)
def test_parse_verdict(text: str, verdict: str | None, explanation: str | None) -> None:
    assert parse_verdict(text) == (verdict, explanation)


def test_templates_fill_fmbench_placeholders_and_the_mock_judge_reads_them(tmp_path, write_config) -> None:
    config = write_config(MINIMAL_EVAL_CONFIG.format(eval_file="model_eval_all_info.yml"), name="c.yml")
    loaded = load_config(config)
    settings, path = load_settings(loaded)
    assert path.name == "model_eval_all_info.yml"  # fmb's own copy: none next to the config
    judge = settings.model_evaluations.subjective_eval_info.judge_panel_list[1]
    template, name = template_text(loaded, settings, judge)
    assert name == "claude_eval_prompt_templates/claude_eval_majority_vote.txt"
    prompt = fill_template(
        template, question="Capital of Lomital?", answer="It is Momo.", ground_truth="Momo", rules="R {x}"
    )
    assert "{question}" not in prompt and "R {x}" in prompt  # braces in the rules stay as they are
    assert judge_parts(prompt) == ("It is Momo.", "Momo")
    assert json.loads(judge_reply(prompt))["verdict"] == "correct"
    wrong = fill_template(template, question="q", answer="w0 w1", ground_truth="Momo, Mome", rules="")
    assert json.loads(judge_reply(wrong))["verdict"] == "incorrect"
    assert ground_truth_text(["Momo", "Mome"]) == "Momo, Mome"


def test_fmbench_settings_file_fills_its_placeholders_from_the_config(fmbench_fixtures: Path) -> None:
    loaded = load_config(fmbench_fixtures / "configs" / "bedrock" / "config-bedrock.yml")
    settings, path = load_settings(loaded)
    assert path == fmbench_fixtures / "configs" / "model_eval_all_info.yml"  # up the config's folders
    evaluations = settings.model_evaluations
    assert (evaluations.ground_truth_col, evaluations.question_col) == ("answers", "input")
    names = [j.eval_prompt_template_name for j in evaluations.subjective_eval_info.judge_panel_list]
    assert names == ["llama3_eval_majority_vote", "claude_eval_majority_vote", "cohere_eval_majority_vote"]
    assert all(j.resolved_backend == "bedrock" for j in evaluations.subjective_eval_info.judge_panel_list)
    assert evaluations.quantitative_eval_info.incorrect_verdict_cosine_similarity_threshold == 0.40


def test_a_settings_file_without_judges_is_refused(write_config, tmp_path) -> None:
    (tmp_path / "eval.yml").write_text("model_evaluations:\n  subjective_eval_info:\n    judge_panel_list: []\n")
    config = write_config(MINIMAL_EVAL_CONFIG.format(eval_file="eval.yml"), name="c.yml")
    with pytest.raises(ConfigError, match="names no judge"):
        load_settings(load_config(config))


# -- slow: end to end ---------------------------------------------------------------------------------

MINIMAL_EVAL_CONFIG = """
general: {{name: eval-test}}
model_evaluations: {eval_file}
s3_read_data: {{source_data_files: ["synthetic:longbench"]}}
datasets:
  prompt_template_keys: [input, context]
  ground_truth_col_key: answers
  question_col_key: input
  synthetic: {{records: 12, max_context_words: 120}}
  min_iters_per_combination: 2
  max_iters_per_combination: 2
  filters:
  - {{language: en, min_length_in_tokens: 1, max_length_in_tokens: 500, payload_file: "payload_en_1-500.jsonl"}}
experiments:
- name: exp
  api: openai-chat
  endpoint_url: http://127.0.0.1:9/v1
  payload_files: [payload_en_1-500.jsonl]
  concurrency_levels: [1]
"""


def eval_settings(judges: list[dict], quantitative: bool = False, embeddings: dict | None = None) -> str:
    return yaml_dump(
        {
            "model_evaluations": {
                "ground_truth_col": "{ground_truth}",
                "question_col": "{question}",
                "PoLL_Composition_and_Voting": {"method": "majority_vote", "use_quantitative_metrics": quantitative},
                "quantitative_eval_info": {
                    "embeddings_model_id": embeddings or {"model_id": "sentence-transformers/all-MiniLM-L6-v2"}
                },
                "subjective_eval_info": {
                    "judge_panel_list": judges,
                    "run_parallel_inference_count": 4,
                    "inference_parameters": {"temperature": 0.1, "max_tokens": 300},
                },
            }
        }
    )


def yaml_dump(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def two_candidates(
    tmp_path: Path,
    right: str,
    wrong: str,
    judges: list[dict],
    quantitative: bool = False,
    accuracy_budget: float | None = None,
    name: str = "config.yml",
) -> Path:
    (tmp_path / "eval.yml").write_text(eval_settings(judges, quantitative))
    config = tmp_path / name
    budget = f"accuracy_budget: {accuracy_budget}, " if accuracy_budget is not None else ""
    config.write_text(
        textwrap.dedent(
            f"""
            general: {{name: two-candidates}}
            model_evaluations: eval.yml
            run_steps: {{1_generate_data.ipynb: yes, 3_run_inference.ipynb: yes, 4_get_evaluations.ipynb: yes,
                         5_model_metric_analysis.ipynb: yes}}
            s3_read_data: {{source_data_files: ["synthetic:longbench"]}}
            datasets:
              prompt_template_keys: [input, context]
              ground_truth_col_key: answers
              question_col_key: input
              synthetic: {{records: 10, max_context_words: 100}}
              min_iters_per_combination: 2
              max_iters_per_combination: 2
              filters:
              - {{language: en, min_length_in_tokens: 1, max_length_in_tokens: 500, payload_file: "payload_en_1-500.jsonl"}}
            inference_parameters:
              p: {{max_tokens: 16}}
            report: {{{budget}min_requests_for_best: 1}}
            experiments:
            - name: right
              instance_type: local.1-vcpu
              api: openai-chat
              endpoint_url: {right}/v1
              inference_spec: {{parameter_set: p}}
              payload_files: [payload_en_1-500.jsonl]
              concurrency_levels: [1, 2]
            - name: wrong
              instance_type: local.1-vcpu
              api: openai-chat
              endpoint_url: {wrong}/v1
              inference_spec: {{parameter_set: p}}
              payload_files: [payload_en_1-500.jsonl]
              concurrency_levels: [1, 2]
            """
        )
    )
    return config


def warehouse(results: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(results / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def evaluation_rows(results: Path) -> list[tuple]:
    return (
        duckdb.connect()
        .execute(
            "select experiment, judge, judge_backend, status, verdict from "
            f"read_parquet('{results}/raw/evaluations/*/*/*.parquet', hive_partitioning = true)"
        )
        .fetchall()
    )


@pytest.mark.slow
def test_a_panel_of_openai_compatible_judges_votes_on_every_response(tmp_path, cli_runner) -> None:
    with (
        mock_server(reply="echo", ttft_ms=20, itl_ms=1) as right,
        mock_server(reply="words", ttft_ms=2, itl_ms=0.5) as wrong,
        mock_server(reply="judge", ttft_ms=2, itl_ms=0.2) as judge_a,
        mock_server(reply="judge", ttft_ms=2, itl_ms=0.2) as judge_b,
    ):
        judges = [
            {
                "model_id": "judge-a",
                "endpoint_url": f"{judge_a}/v1",
                "eval_prompt_template_dir": "llama3_eval_prompt_templates",
            },
            {"model_id": "judge-b", "endpoint_url": f"{judge_b}/v1", "api": "openai-chat"},
            {
                "model_id": "judge-c",
                "endpoint_url": f"{judge_a}/v1",
                "eval_prompt_template_dir": "mistral_eval_prompt_templates",
            },
        ]
        config = two_candidates(tmp_path, right, wrong, judges)
        results = tmp_path / "results"
        result = cli_runner.invoke(cli, ["run", str(config), "--results", str(results), "--quiet"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "evaluation" in result.output and "judge call(s)" in result.output
    rows = evaluation_rows(results)
    responses = (
        duckdb.connect()
        .execute(f"select count(*) from read_parquet('{results}/raw/requests/*/*/*.parquet') where status = 'ok'")
        .fetchone()[0]
    )
    assert len(rows) == 3 * responses  # every judge on every response
    assert {r[3] for r in rows} == {"ok"}
    assert {(e, v) for e, _, _, _, v in rows} == {("right", "correct"), ("wrong", "incorrect")}
    assert {j for _, j, _, _, _ in rows} == {"judge-a", "judge-b", "judge-c"}
    scores = (
        duckdb.connect()
        .execute(
            "select experiment, bool_and(exact_match), avg(token_f1), count(cosine_similarity) "
            f"from read_parquet('{results}/raw/evaluation_scores/*/*/*.parquet') group by experiment order by experiment"
        )
        .fetchall()
    )
    assert scores[0][0] == "right" and scores[1] == ("wrong", False, 0.0, 0)  # no embeddings model asked for
    runs = (
        duckdb.connect()
        .execute(f"select status, method, judges_json from read_parquet('{results}/raw/evaluation_runs/*/*.parquet')")
        .fetchall()
    )
    assert [r[:2] for r in runs] == [("completed", "majority_vote")]
    assert [j["model_id"] for j in json.loads(runs[0][2])] == ["judge-a", "judge-b", "judge-c"]
    # The marts: the echoing candidate is always right, the other always wrong; the panel agrees.
    accuracy = warehouse(results, "select experiment, accuracy from accuracy_by_experiment order by experiment")
    assert accuracy == [("right", 1.0), ("wrong", 0.0)]
    best = warehouse(results, "select experiment from recommendations where is_best_overall")
    assert best == [("wrong",)]  # without an accuracy budget the faster, cheaper candidate is best
    agreement = warehouse(results, "select judge, majority_agreement_rate from judge_agreement order by judge")
    assert agreement == [("judge-a", 1.0), ("judge-b", 1.0), ("judge-c", 1.0)]
    # An accuracy budget excludes it: the best option changes, and says how accurate it is.
    with (
        mock_server(reply="echo", ttft_ms=20, itl_ms=1) as right,
        mock_server(reply="words", ttft_ms=2, itl_ms=0.5) as wrong,
        mock_server(reply="judge", ttft_ms=2, itl_ms=0.2) as judge_a,
    ):
        judges = [{"model_id": "judge-a", "endpoint_url": f"{judge_a}/v1"}]
        config = two_candidates(tmp_path, right, wrong, judges, accuracy_budget=0.8, name="budget.yml")
        result = cli_runner.invoke(cli, ["run", str(config), "--results", str(results), "--quiet"], terminal_width=200)
    assert result.exit_code == 0, result.output
    latest = warehouse(results, "select run_id from runs order by started_at desc limit 1")[0][0]
    best = warehouse(
        results, f"select experiment, accuracy from recommendations where is_best_overall and run_id = '{latest}'"
    )
    assert best == [("right", 1.0)]
    excluded = warehouse(
        results,
        f"select distinct budgets_broken from recommendations where experiment = 'wrong' and run_id = '{latest}'",
    )
    assert all("accuracy" in str(b) for (b,) in excluded)
    report = next((results / "reports").glob("*/report.md")).read_text()
    assert "## Accuracy" in report


@pytest.mark.slow
def test_a_failing_judge_is_a_row_not_a_crash(tmp_path, cli_runner) -> None:
    with (
        mock_server(reply="echo", ttft_ms=2, itl_ms=0.2) as right,
        mock_server(reply="words", ttft_ms=2, itl_ms=0.2) as wrong,
        mock_server(reply="judge", ttft_ms=2, itl_ms=0.2) as judge,
        mock_server(reply="judge", error_rate=1.0, error_status=500) as broken,
        mock_server(reply="words") as chatty,  # answers, but never with a verdict
    ):
        judges = [
            {"model_id": "good", "endpoint_url": f"{judge}/v1"},
            {"model_id": "broken", "endpoint_url": f"{broken}/v1"},
            {"model_id": "chatty", "endpoint_url": f"{chatty}/v1"},
        ]
        config = two_candidates(tmp_path, right, wrong, judges)
        results = tmp_path / "results"
        result = cli_runner.invoke(cli, ["run", str(config), "--results", str(results), "--quiet"], terminal_width=200)
    assert result.exit_code == 0, result.output
    rows = evaluation_rows(results)
    by_judge = {j: {(s, v) for _, jj, _, s, v in rows if jj == j} for j in ("good", "broken", "chatty")}
    assert by_judge["good"] == {("ok", "correct"), ("ok", "incorrect")}
    assert by_judge["broken"] == {("error", None)}
    assert by_judge["chatty"] == {("ok", None)}
    errors = (
        duckdb.connect()
        .execute(
            "select distinct judge, error_type from "
            f"read_parquet('{results}/raw/evaluations/*/*/*.parquet', hive_partitioning = true) where error_type is not null"
        )
        .fetchall()
    )
    assert sorted(errors) == [("broken", "http_500"), ("chatty", "no_verdict")]
    # A panel that gave no verdict at all is a failed evaluation: it never replaces a good one.
    with mock_server(reply="judge", error_rate=1.0, error_status=500) as broken:
        (tmp_path / "eval.yml").write_text(eval_settings([{"model_id": "broken", "endpoint_url": f"{broken}/v1"}]))
        result = cli_runner.invoke(cli, ["evaluate", str(config), "--results", str(results)], terminal_width=200)
    assert result.exit_code == 1 and "no judge call returned a verdict" in result.output
    assert "Traceback" not in result.output
    statuses = (
        duckdb.connect()
        .execute(f"select status from read_parquet('{results}/raw/evaluation_runs/*/*.parquet') order by started_at")
        .fetchall()
    )
    assert statuses == [("completed",), ("failed",)]
    # Payload files prepared again since the run: the ground truths cannot be matched, and fmb says why.
    for payload in (results / "payloads").rglob("*.jsonl"):
        lines = [json.loads(line) for line in payload.read_text().splitlines() if line.strip()]
        payload.write_text("".join(json.dumps(line | {"inputs": line["inputs"] + " (again)"}) + "\n" for line in lines))
    result = cli_runner.invoke(cli, ["evaluate", str(config), "--results", str(results)], terminal_width=200)
    assert result.exit_code == 1 and "prepared again since" in result.output and "Traceback" not in result.output


def test_placeholders_are_filled_once() -> None:
    filled = fill_template(
        "Q {question} A {answer} G {ground_truth}",
        question="{answer}?",
        answer="I think {ground_truth}",
        ground_truth="Paris",
        rules="",
    )
    assert filled == "Q {answer}? A I think {ground_truth} G Paris"


@pytest.mark.slow
def test_fmbench_bedrock_evaluation_sample_with_judges_on_the_bedrock_runtime(
    fmbench_fixtures: Path, tmp_path, cli_runner
) -> None:
    """FMBench's Bedrock config, unchanged: candidates and its three Bedrock judges on one mock runtime."""
    from tests.test_fmbench_fixtures import write_read_dir

    (tmp_path / "read").mkdir()
    read_dir = write_read_dir(tmp_path / "read", fmbench_fixtures)
    config = fmbench_fixtures / "configs" / "bedrock" / "config-bedrock.yml"
    results = tmp_path / "results"
    with mock_server(reply="auto", ttft_ms=2, itl_ms=0, tokens_per_chunk=200) as runtime:
        result = cli_runner.invoke(
            cli,
            [
                "run",
                str(config),
                "--results",
                str(results),
                "--quiet",
                "-A",
                f"read_tmpdir={read_dir}",
                "-A",
                f"bedrock_runtime_endpoint_url={runtime}",
                "-A",
                "aws_access_key_id=testing",
                "-A",
                "aws_secret_access_key=testing",
                "-A",
                "region=us-east-1",
            ],
            terminal_width=200,
        )
    assert result.exit_code == 0, result.output
    rows = evaluation_rows(results)
    assert rows and {b for _, _, b, _, _ in rows} == {"bedrock"}
    assert {j for _, j, _, _, _ in rows} == {
        "us.meta.llama3-3-70b-instruct-v1:0",
        "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
        "cohere.command-r-plus-v1:0",
    }
    # The candidates echo their prompts, whose passages hold the answers: every judge says correct.
    assert {(s, v) for _, _, _, s, v in rows} == {("ok", "correct")}
    accuracy = warehouse(results, "select experiment, accuracy from accuracy_by_experiment")
    assert accuracy and all(a == 1.0 for _, a in accuracy)
    report = next((results / "reports").glob("*/report.md")).read_text()
    assert "## Accuracy" in report


@pytest.mark.slow
def test_the_real_local_model_as_candidate_and_as_judge(tmp_path, cli_runner) -> None:
    """llama.cpp with Gemma 3 270M answers the questions, then judges its own answers (a base model: the
    verdicts are whatever it says, but every call is a real request with real timings and tokens)."""
    from tests.test_deployers import tiny_real_config

    config = tiny_real_config(tmp_path, concurrency="[1]", rounds=1)
    judge = {"model_id": "gemma-3-270m", "experiment": "gemma-270m-1-thread"}
    settings = eval_settings([judge]).replace("max_tokens: 300", "max_tokens: 40")
    (tmp_path / "eval.yml").write_text(settings)
    steps = ", ".join(
        f"{n}: yes"
        for n in (
            "1_generate_data.ipynb",
            "2_deploy_model.ipynb",
            "3_run_inference.ipynb",
            "4_get_evaluations.ipynb",
            "5_model_metric_analysis.ipynb",
            "6_cleanup.ipynb",
        )
    )
    config.write_text(config.read_text() + f"\nmodel_evaluations: eval.yml\nrun_steps: {{{steps}}}\n")
    results = tmp_path / "results"
    result = cli_runner.invoke(cli, ["run", str(config), "--results", str(results), "--quiet"], terminal_width=200)
    assert "Traceback" not in result.output
    responses = (
        duckdb.connect()
        .execute(
            f"select count(*) from read_parquet('{results}/raw/requests/*/*/*.parquet') where status = 'ok' and not is_warmup"
        )
        .fetchone()[0]
    )
    calls = (
        duckdb.connect()
        .execute(
            "select status, verdict, latency_ms, prompt_tokens, completion_tokens, judge_backend from "
            f"read_parquet('{results}/raw/evaluations/*/*/*.parquet', hive_partitioning = true)"
        )
        .fetchall()
    )
    assert responses > 0 and len(calls) == responses
    assert all(c[0] == "ok" and c[2] > 0 and c[3] > 0 and c[4] > 0 for c in calls)
    assert {c[1] for c in calls} <= {"correct", "incorrect", None}
    assert {c[5] for c in calls} == {"experiment gemma-270m-1-thread"}
    assert next((results / "reports").glob("*/report.md")).is_file()  # built and reported either way
    if any(c[1] for c in calls):  # the base model wrote a verdict: the evaluation counts
        assert result.exit_code == 0, result.output
        assert warehouse(results, "select sum(count_responses) from accuracy") == [(responses,)]
    else:  # it did not (the usual case for a 270M base model): the step failed, and the run says so
        assert result.exit_code == 1 and "The accuracy step failed" in result.output
        assert warehouse(results, "select count(*) from accuracy") == [(0,)]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("embeddings", "assignment"),
    [
        ({"model_id": "amazon.titan-embed-text-v2:0"}, "bedrock_runtime_endpoint_url"),
        ({"model_id": "bge-base", "ep_name": "bge-endpoint"}, "sagemaker_runtime_endpoint_url"),
    ],
)
def test_embeddings_endpoints_on_the_aws_runtimes(tmp_path, write_config, embeddings, assignment) -> None:
    """Titan on Bedrock and a SageMaker embeddings endpoint, through boto3 against the mock AWS runtimes."""
    from rich.console import Console

    from fmb.evaluate import scores
    from fmb.evaluate.step import embeddings_provider

    judges = [{"model_id": "j", "endpoint_url": "http://127.0.0.1:9/v1"}]
    (tmp_path / "eval.yml").write_text(eval_settings(judges, quantitative=True, embeddings=embeddings))
    config = write_config(MINIMAL_EVAL_CONFIG.format(eval_file="eval.yml"), name="c.yml")
    with mock_server() as runtime:
        loaded = load_config(
            config,
            {
                assignment: runtime,
                "aws_access_key_id": "testing",
                "aws_secret_access_key": "testing",
                "region": "us-east-1",
            },
        )
        settings, _ = load_settings(loaded)
        provider = embeddings_provider(settings, Console(), loaded)
        rows = scores.score_batch(
            [("The capital of Lomital is Momo", "capital of Lomital is Momo"), ("zz yy", "Momo")], provider
        )
    assert provider.model_name in ("amazon.titan-embed-text-v2:0", "bge-endpoint")
    assert rows[0].cosine_similarity is not None and rows[1].cosine_similarity is not None
    assert rows[0].cosine_similarity > 0.8 > rows[1].cosine_similarity
