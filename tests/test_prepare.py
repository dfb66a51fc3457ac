"""`fmb prepare`: datasets, templates, token counts, filters and payload files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from textwrap import dedent

import pyarrow.parquet as pq
import pytest

from fmb.cli import cli
from fmb.config import load_config
from fmb.config.schema import Synthetic
from fmb.paths import ResultsLayout
from fmb.prepare.payloads import prepare, prompt_id
from fmb.prepare.synthetic import longbench_records
from fmb.prepare.tokens import HFTokenizer, WordRule
from tests.conftest import MISTRAL_TOKENIZER

EXPERIMENT = """
experiments:
- name: e1
  api: openai-chat
  endpoint_url: http://127.0.0.1:9/v1
  payload_files: [payload_en_1-500.jsonl]
  concurrency_levels: [1]
"""


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_word_rule_is_fmbench_s() -> None:
    rule = WordRule()
    assert rule.count("one two three") == math.ceil(3 * 1000 / 750) == 4
    assert rule.count("a " * 750) == 1000
    assert rule.count("") == 0


def test_synthetic_longbench_is_deterministic_and_answerable() -> None:
    a = longbench_records(Synthetic(seed=7, records=30))
    b = longbench_records(Synthetic(seed=7, records=30))
    c = longbench_records(Synthetic(seed=8, records=30))
    assert a == b
    assert a != c
    for record in a:
        assert set(record) >= {"input", "context", "answers", "length", "language", "_id", "dataset", "all_classes"}
        assert record["answers"][0] in record["context"]
        assert record["length"] == len(record["context"].split())
    lengths = sorted(r["length"] for r in a)
    assert lengths[0] < 100 < lengths[-1]  # spread over the range, so filters get prompts


def test_exact_length_prompts_with_a_real_tokenizer(tmp_path: Path, write_config) -> None:
    path = write_config(
        dedent(f"""
        general: {{name: exact}}
        s3_read_data:
          source_data_files: [synthetic:exact-lengths]
        datasets:
          tokenizer: {MISTRAL_TOKENIZER}
          prompt_template_keys: [context, input]
          synthetic: {{prompts_per_filter: 12, seed: 3, length_distribution: normal}}
          filters:
          - {{language: en, min_length_in_tokens: 20, max_length_in_tokens: 60, payload_file: payload_en_20-60.jsonl}}
          - {{language: en, min_length_in_tokens: 900, max_length_in_tokens: 1100, payload_file: payload_en_900-1100.jsonl}}
        """)
        + EXPERIMENT
    )
    loaded = load_config(path)
    result = prepare(loaded, ResultsLayout(tmp_path / "results"))
    assert [f.prompts for f in result.filters] == [12, 12]
    assert not [n for n in result.notes if "cannot be hit" in n]
    tok = HFTokenizer(MISTRAL_TOKENIZER)
    table = pq.read_table(result.prompts_table).to_pylist()
    by_id = {row["prompt_id"]: row for row in table}
    for flt in result.filters:
        for line in read_lines(flt.path):
            n = tok.count(line["inputs"])
            assert flt.min_tokens <= n < flt.max_tokens
            assert by_id[prompt_id(line["inputs"])]["prompt_tokens"] == n


def test_exact_lengths_hit_their_targets(tmp_path: Path, write_config) -> None:
    from fmb.config.schema import Filter
    from fmb.prepare.sources import PromptTemplate
    from fmb.prepare.synthetic import exact_length_records

    tok = HFTokenizer(MISTRAL_TOKENIZER)
    template = PromptTemplate("<s>[INST] {input} [/INST]", ["input"], "test")
    flt = Filter(language="en", min_length_in_tokens=30, max_length_in_tokens=400, payload_file="p.jsonl")
    records, notes = exact_length_records(
        Synthetic(prompts_per_filter=20), [flt], ["input"], template.render, tok.count
    )
    assert notes == []
    for record in records:
        assert tok.count(template.render(record)) == record["target_tokens"]


def test_longbench_files_with_fmbench_template_and_filters(
    tmp_path: Path, write_config, fmbench_fixtures: Path
) -> None:
    source = tmp_path / "read" / "source_data"
    source.mkdir(parents=True)
    records = longbench_records(Synthetic(seed=1, records=60))
    records[0]["language"] = "zh"  # filtered out by language
    (source / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    path = write_config(
        dedent(f"""
        general: {{name: lb}}
        s3_read_data:
          s3_or_local_file_system: local
          local_file_system_path: {fmbench_fixtures}
          source_data_prefix: {source}
          source_data_files: [qa.jsonl]
          prompt_template_file: prompt_template_llama3.txt
        datasets:
          prompt_template_keys: [input, context]
          ground_truth_col_key: answers
          question_col_key: input
          filters:
          - {{language: en, min_length_in_tokens: 1, max_length_in_tokens: 500, payload_file: payload_en_1-500.jsonl}}
          - {{language: en, min_length_in_tokens: 500, max_length_in_tokens: 100000, payload_file: payload_en_500-100000.jsonl}}
          - {{language: en, min_length_in_tokens: 100000, max_length_in_tokens: 200000, payload_file: payload_en_huge.jsonl}}
        """)
        + EXPERIMENT
    )
    loaded = load_config(path)
    result = prepare(loaded, ResultsLayout(tmp_path / "results"))
    assert "750 words = 1000 tokens" in result.counter  # no tokenizer configured
    small, large, empty = result.filters
    assert small.prompts + large.prompts == 59
    assert empty.prompts == 0 and empty.path is None and result.empty_filters == [empty]
    rule = WordRule()
    template = (fmbench_fixtures / "prompt_template" / "prompt_template_llama3.txt").read_text().strip()
    for flt in (small, large):
        for line in read_lines(flt.path):
            assert set(line) == {"inputs", "ground_truth", "question"}
            assert flt.min_tokens <= rule.count(line["inputs"]) < flt.max_tokens
            assert line["inputs"].startswith(template.split("{context}")[0])
            assert line["question"] in line["inputs"]
            assert isinstance(line["ground_truth"], list)
    from fmb.prepare.sources import PromptTemplate

    zh_prompt = PromptTemplate(template, ["input", "context"], "test").render(records[0])
    written = {prompt_id(line["inputs"]) for flt in (small, large) for line in read_lines(flt.path)}
    assert prompt_id(zh_prompt) not in written
    assert len(written) == 59


def test_prepare_cli_reports_an_empty_filter(tmp_path: Path, write_config, cli_runner) -> None:
    path = write_config(
        dedent("""
        general: {name: empty}
        s3_read_data: {source_data_files: ["synthetic:longbench"]}
        datasets:
          prompt_template_keys: [context, input]
          synthetic: {records: 20, max_context_words: 300}
          filters:
          - {language: en, min_length_in_tokens: 1, max_length_in_tokens: 1000, payload_file: payload_en_1-1000.jsonl}
          - {language: fr, min_length_in_tokens: 1, max_length_in_tokens: 1000, payload_file: payload_fr_1-1000.jsonl}
        """)
        + EXPERIMENT
    )
    result = cli_runner.invoke(cli, ["prepare", str(path), "--results", str(tmp_path / "r")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "payload_fr_1-1000.jsonl (language fr, 1 <= tokens < 1000) matched no prompt" in result.output
    assert (tmp_path / "r" / "payloads" / "empty" / "payload_en_1-1000.jsonl").is_file()
    assert not (tmp_path / "r" / "payloads" / "empty" / "payload_fr_1-1000.jsonl").exists()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # conftest's hub is a port nothing listens on
        ("hf:THUDM/LongBench/2wikimqa_e/test", "the hub could not be reached at http://127.0.0.1:9"),
        ("hf:THUDM/LongBench/2wikimqa_e/test", "No local copy either (2wikimqa_e.jsonl"),
        ("missing.jsonl", "does not exist"),
        ("synthetic:nope", "is not a built-in dataset"),
    ],
)
def test_bad_sources_are_clear_errors(source: str, expected: str, write_config, cli_runner, tmp_path: Path) -> None:
    path = write_config(
        dedent(f"""
        general: {{name: bad}}
        s3_read_data: {{source_data_files: ["{source}"]}}
        datasets:
          prompt_template_keys: [input]
          filters:
          - {{language: en, min_length_in_tokens: 1, max_length_in_tokens: 10, payload_file: p.jsonl}}
        """)
        + EXPERIMENT
    )
    result = cli_runner.invoke(cli, ["prepare", str(path), "--results", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert expected in result.output
    assert "Traceback" not in result.output


def test_broken_jsonl_line_is_named(write_config, cli_runner, tmp_path: Path) -> None:
    (tmp_path / "source_data").mkdir()
    (tmp_path / "source_data" / "d.jsonl").write_text('{"input": "a"}\n{"input": oops}\n', encoding="utf-8")
    path = write_config(
        dedent("""
        general: {name: bad}
        s3_read_data: {source_data_files: [d.jsonl]}
        datasets:
          prompt_template_keys: [input]
          filters:
          - {language: en, min_length_in_tokens: 1, max_length_in_tokens: 10, payload_file: p.jsonl}
        """)
        + EXPERIMENT
    )
    result = cli_runner.invoke(cli, ["prepare", str(path), "--results", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "d.jsonl line 2: not a JSON object" in result.output


def test_missing_template_key_in_records(write_config, cli_runner, tmp_path: Path) -> None:
    (tmp_path / "source_data").mkdir()
    (tmp_path / "source_data" / "d.jsonl").write_text('{"question": "a"}\n', encoding="utf-8")
    path = write_config(
        dedent("""
        general: {name: bad}
        s3_read_data: {source_data_files: [d.jsonl]}
        datasets:
          prompt_template_keys: [input]
          filters:
          - {language: en, min_length_in_tokens: 1, max_length_in_tokens: 10, payload_file: p.jsonl}
        """)
        + EXPERIMENT
    )
    result = cli_runner.invoke(cli, ["prepare", str(path), "--results", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "the record has no input" in result.output and "question" in result.output
