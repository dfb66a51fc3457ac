"""Hugging Face hub inputs (`hf:` datasets, `hf_tokenizer_model_id`) through a stand-in hub.

huggingface_hub's own client talks to tests/hf_hub.py's server (set as HF_ENDPOINT), and its
cache is a folder of the test (HF_HUB_CACHE); nothing reaches the internet.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from textwrap import dedent

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fmb.cli import cli
from fmb.config import load_config
from fmb.paths import ResultsLayout
from fmb.prepare.hub import CONVERTED, Hub, split_files
from fmb.prepare.payloads import prepare, tokenizer_candidates
from fmb.prepare.sources import read_source_file
from fmb.prepare.tokens import HFTokenizer, WordRule, load_counter
from tests.conftest import MISTRAL_TOKENIZER
from tests.hf_hub import StandInHub, stand_in_hub

TOKEN = "hf_standin0123456789abcdefSECRET"
LLAMA = "meta-llama/Meta-Llama-3-8B-Instruct"
LONGBENCH_SUBSETS = ["2wikimqa_e", "2wikimqa", "hotpotqa_e", "hotpotqa", "narrativeqa", "triviaqa_e", "triviaqa"]


def parquet(rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def longbench_rows(subset: str, n: int = 6) -> list[dict]:
    """LongBench's columns, with contexts of 100 to 2,600 words (prompts in each of FMBench's
    sample filters, 1-500 to 3000-3840 tokens)."""
    rows = []
    for j, words in enumerate([100, 500, 1000, 1700, 2500, 2600][:n]):
        rows.append(
            {
                "input": f"What is the code name of project {subset}-{j}?",
                "context": " ".join(["lorem"] * words) + f" The code name of project {subset}-{j} is Zorvia{j}.",
                "answers": [f"Zorvia{j}"],
                "length": words,
                "dataset": subset,
                "language": "en",
                "all_classes": None,
                "_id": f"{subset}-{j}",
            }
        )
    return rows


def longbench(hub: StandInHub, subsets: list[str] = LONGBENCH_SUBSETS) -> dict[str, list[dict]]:
    """THUDM/LongBench as the hub has it: a loading script and an archive on main, Parquet on
    refs/convert/parquet (two shards for the first subset)."""
    rows = {s: longbench_rows(s) for s in subsets}
    converted = {}
    for i, subset in enumerate(subsets):
        if i == 0:
            converted[f"{subset}/test/0000.parquet"] = parquet(rows[subset][:3])
            converted[f"{subset}/test/0001.parquet"] = parquet(rows[subset][3:])
        else:
            converted[f"{subset}/test/0000.parquet"] = parquet(rows[subset])
    main = {"LongBench.py": b"# a loading script", "data.zip": b"PK\x03\x04", "README.md": b"# LongBench"}
    hub.add("dataset", "THUDM/LongBench", {"main": main, CONVERTED: converted})
    return rows


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A cache of this test's own, no token and no offline switch from the caller's environment."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    return cache


def test_a_longbench_split_is_fetched_into_the_cache_then_read_from_it_offline(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    entry = "hf:THUDM/LongBench/2wikimqa_e/test"
    hub = StandInHub()
    rows = longbench(hub)
    with stand_in_hub(hub) as served:
        monkeypatch.setenv("HF_ENDPOINT", served.url)
        records = read_source_file(tmp_path, "source_data", entry, ["input", "context"])
        paths = {r.path for r in served.requests}
    assert [r.fields for r in records] == rows["2wikimqa_e"]  # both shards, in order
    assert [r.record_id for r in records] == [f"2wikimqa_e-{j}" for j in range(6)]
    assert {r.source_file for r in records} == {entry}
    assert "/api/datasets/THUDM/LongBench/revision/refs%2Fconvert%2Fparquet" in paths
    assert "/datasets/THUDM/LongBench/resolve/refs%2Fconvert%2Fparquet/2wikimqa_e/test/0001.parquet" in paths
    assert not any("hotpotqa" in p for p in paths)  # only the split asked for
    assert list((hub_env / "datasets--THUDM--LongBench" / "snapshots").glob("*/2wikimqa_e/test/0000.parquet"))

    # The server is gone: the hub cannot be reached, and the cache answers.
    monkeypatch.setenv("HF_ENDPOINT", served.url)
    again = read_source_file(tmp_path, "source_data", entry, ["input", "context"])
    assert [r.fields for r in again] == rows["2wikimqa_e"]

    # HF_HUB_OFFLINE=1: not one request, even to a hub that answers.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with stand_in_hub(StandInHub()) as watcher:
        monkeypatch.setenv("HF_ENDPOINT", watcher.url)
        offline = read_source_file(tmp_path, "source_data", entry, ["input", "context"])
        assert watcher.requests == []
    assert [r.fields for r in offline] == rows["2wikimqa_e"]

    # A split that was never fetched: the error says both what is missing and why.
    with pytest.raises(Exception) as info:
        read_source_file(tmp_path, "source_data", "hf:THUDM/LongBench/hotpotqa/test", ["input"])
    message = str(info.value)
    assert f"not in the Hugging Face cache ({hub_env})" in message
    assert "HF_HUB_OFFLINE=1 forbids downloads" in message
    assert "No local copy either (hotpotqa.jsonl" in message


def test_a_local_copy_comes_first(hub_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "source_data").mkdir()
    (tmp_path / "source_data" / "2wikimqa_e.jsonl").write_text('{"input": "local", "_id": "x"}\n', encoding="utf-8")
    hub = StandInHub()
    longbench(hub)
    with stand_in_hub(hub) as served:
        monkeypatch.setenv("HF_ENDPOINT", served.url)
        records = read_source_file(tmp_path, "source_data", "hf:THUDM/LongBench/2wikimqa_e/test", ["input"])
        assert served.requests == []
    assert [r.fields["input"] for r in records] == ["local"]


@pytest.mark.parametrize(
    ("entry", "files", "chosen"),
    [
        # push_to_hub's layout for a dataset without subsets
        (
            "hf:org/ds/default/train",
            [
                "data/train-00000-of-00002.parquet",
                "data/train-00001-of-00002.parquet",
                "data/test-00000-of-00001.parquet",
            ],
            ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"],
        ),
        # a folder per subset
        (
            "hf:org/ds/cnn/test",
            ["cnn/test-00000-of-00001.parquet", "cnn/train-00000-of-00001.parquet", "xsum/test-00000-of-00001.parquet"],
            ["cnn/test-00000-of-00001.parquet"],
        ),
        # JSONL and JSON files at the top
        ("hf:org/ds/default/validation", ["README.md", "train.jsonl", "validation.jsonl"], ["validation.jsonl"]),
        ("hf:org/ds/default/test", ["test.json", "train.json"], ["test.json"]),
        # no split named: the first of train, validation, test
        ("hf:org/ds", ["data/test.jsonl", "data/validation.jsonl"], ["data/validation.jsonl"]),
    ],
)
def test_split_layouts_on_the_main_branch(
    entry: str, files: list[str], chosen: list[str], hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def content(name: str, split_rows: list[dict]) -> bytes:
        if name.endswith(".parquet"):
            return parquet(split_rows)
        if name.endswith(".json"):
            return json.dumps(split_rows).encode()  # a JSON array of objects
        return "\n".join(json.dumps(r) for r in split_rows).encode()

    data = {name: content(name, [{"input": f"{name} row {i}"} for i in range(2)]) for name in files}
    hub = StandInHub()
    hub.add("dataset", "org/ds", {"main": data})
    with stand_in_hub(hub) as served:
        monkeypatch.setenv("HF_ENDPOINT", served.url)
        rows, note = Hub.from_env().dataset(entry)
    assert rows == [{"input": f"{name} row {i}"} for name in chosen for i in range(2)]
    assert note == f"{entry}: {2 * len(chosen)} records from {served.url}, org/ds@main: {', '.join(chosen)}"


def test_the_parquet_branch_layout_and_its_partial_folders() -> None:
    files = ["a/test/0000.parquet", "a/partial-train/0000.parquet", "b/test/0000.parquet"]
    assert split_files(files, "a", "test", converted=True) == ["a/test/0000.parquet"]
    assert split_files(files, "a", "train", converted=True) == ["a/partial-train/0000.parquet"]
    assert split_files(files, "a", "validation", converted=True) == []
    assert split_files(files, "a", "train", converted=False) == []  # partial- folders only on the branch


def prepare_config(write_config, source: str, tokenizer: str | None = None, name: str = "hf") -> Path:
    experiment = f"\n  hf_tokenizer_model_id: {tokenizer}" if tokenizer else ""
    return write_config(
        dedent(f"""
        general: {{name: {name}}}
        s3_read_data:
          scripts_prefix: scripts
          source_data_files: ["{source}"]
        datasets:
          prompt_template_keys: [input, context]
          ground_truth_col_key: answers
          question_col_key: input
          filters:
          - {{language: en, min_length_in_tokens: 1, max_length_in_tokens: 100000, payload_file: p.jsonl}}
        experiments:
        - name: e1
          api: openai-chat
          endpoint_url: http://127.0.0.1:9/v1
          payload_files: [p.jsonl]
          concurrency_levels: [1]""")
        + experiment
        + "\n"
    )


def test_hub_errors_are_clear_and_say_which(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, write_config, cli_runner
) -> None:
    hub = StandInHub()
    longbench(hub, ["2wikimqa_e"])
    hub.add("dataset", "org/gated", {"main": {"data/test-0.parquet": parquet(longbench_rows("g"))}}, token=TOKEN)

    def run(source: str) -> str:
        path = prepare_config(write_config, source)
        result = cli_runner.invoke(cli, ["prepare", str(path), "--results", str(tmp_path / "r")], terminal_width=200)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        return " ".join(result.output.split())

    with stand_in_hub(hub) as served:
        monkeypatch.setenv("HF_ENDPOINT", served.url)
        missing = run("hf:THUDM/NoSuchBench/a/test")
        assert f"the dataset THUDM/NoSuchBench does not exist on {served.url}" in missing
        assert "No local copy either (a.jsonl" in missing
        assert "'a--b/c' is not a hub repository id" in run("hf:a--b/c/x/test")
        no_split = run("hf:THUDM/LongBench/2wikimqa_e/validation")
        assert (
            "has no files for subset '2wikimqa_e', split 'validation' (looked at main and refs/convert/parquet)"
            in no_split
        )
        gated = run("hf:org/gated/default/test")
        assert f"the dataset org/gated is gated on {served.url}: it needs a token, and fmb has none" in gated
        assert f"Set HF_TOKEN or put FMBench's hf_token.txt in {tmp_path / 'scripts'}/" in gated
    unreachable = run("hf:THUDM/LongBench/2wikimqa_e/test")  # never fetched, and the server is gone
    assert f"not in the Hugging Face cache ({hub_env}) and the hub could not be reached at {served.url}" in unreachable
    assert "ConnectError" in unreachable or "Connect" in unreachable


def test_a_gated_dataset_with_fmbench_s_hf_token_file(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, write_config, cli_runner
) -> None:
    hub = StandInHub()
    rows = longbench_rows("g")
    hub.add("dataset", "org/gated", {"main": {"data/test-0.parquet": parquet(rows)}}, token=TOKEN)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "hf_token.txt").write_text(TOKEN + "\n", encoding="utf-8")
    path = prepare_config(write_config, "hf:org/gated/default/test")
    with stand_in_hub(hub) as served:
        monkeypatch.setenv("HF_ENDPOINT", served.url)
        result = cli_runner.invoke(cli, ["prepare", str(path), "--results", str(tmp_path / "r")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    payload = tmp_path / "r" / "payloads" / "hf" / "p.jsonl"
    lines = [json.loads(line) for line in payload.read_text(encoding="utf-8").splitlines()]
    assert [line["ground_truth"] for line in lines] == [r["answers"] for r in rows]
    on_hub = [r for r in served.requests if r.server == "hub" and "/resolve/" in r.path]
    assert on_hub and all(r.authorized for r in on_hub)
    assert all(r.authorization is None for r in served.requests if r.server == "cdn")  # the token stays on the hub

    # A wrong token is refused, and the error says where it came from without printing it.
    (tmp_path / "scripts" / "hf_token.txt").write_text("hf_wrong_token_value\n", encoding="utf-8")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with stand_in_hub(hub) as served:
        monkeypatch.setenv("HF_ENDPOINT", served.url)
        result = cli_runner.invoke(cli, ["prepare", str(path), "--results", str(tmp_path / "r")], terminal_width=200)
    assert result.exit_code == 1
    assert "hf_wrong_token_value" not in result.output and TOKEN not in result.output
    assert f"The token from {tmp_path / 'scripts' / 'hf_token.txt'} was sent and refused" in " ".join(
        result.output.split()
    )


def test_hf_tokenizer_model_id_from_the_hub_then_from_the_cache(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, write_config
) -> None:
    hub = StandInHub()
    longbench(hub, ["2wikimqa_e"])
    model = {"tokenizer.json": MISTRAL_TOKENIZER.read_bytes(), "config.json": b"{}", "tokenizer_config.json": b"{}"}
    hub.add("model", LLAMA, {"main": model}, token=TOKEN)
    path = prepare_config(write_config, "hf:THUDM/LongBench/2wikimqa_e/test", tokenizer=LLAMA)
    tokenizer = HFTokenizer(MISTRAL_TOKENIZER)

    def prompts(result) -> list[dict]:
        return pq.read_table(result.prompts_table).to_pylist()

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with stand_in_hub(hub) as served:
        monkeypatch.setenv("HF_ENDPOINT", served.url)
        result = prepare(load_config(path), ResultsLayout(tmp_path / "r1"))
        tokenizer_calls = [r for r in served.requests if LLAMA in r.path]
        # fmb collect counts with the same tokenizer, from the cache only: not one request.
        before = len(served.requests)
        cached, _ = load_counter(tokenizer_candidates(load_config(path), Hub.from_env(cache_only=True)))
        assert cached.name == f"tokenizer:{LLAMA}" and len(served.requests) == before
    assert result.counter.startswith(f"tokens counted with {LLAMA}'s tokenizer.json from the hub ({hub_env}")
    assert TOKEN not in result.counter
    assert any(r.path.endswith("/resolve/main/tokenizer.json") and r.authorized for r in tokenizer_calls)
    assert not any("tokenizer_config" in r.path or "config.json" in r.path for r in tokenizer_calls)
    first = prompts(result)
    assert {row["token_counter"] for row in first} == {f"tokenizer:{LLAMA}"}
    lines = [json.loads(line) for line in result.filters[0].path.read_text(encoding="utf-8").splitlines()]
    assert [row["prompt_tokens"] for row in first] == [tokenizer.count(line["inputs"]) for line in lines]

    # Offline, with neither server nor token: the cache holds the tokenizer and the split.
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = prepare(load_config(path), ResultsLayout(tmp_path / "r2"))
    assert again.counter == result.counter
    assert prompts(again) == [
        row | {"prepared_at": again_row["prepared_at"]} for row, again_row in zip(first, prompts(again), strict=True)
    ]


def test_a_hub_tokenizer_that_cannot_be_had_falls_back_to_the_word_rule_saying_why(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, write_config
) -> None:
    hub = StandInHub()
    longbench(hub, ["2wikimqa_e"])
    hub.add("model", LLAMA, {"main": {"tokenizer.json": MISTRAL_TOKENIZER.read_bytes()}}, token=TOKEN)
    hub.add("model", "org/no-tokenizer", {"main": {"tokenizer.model": b"sentencepiece"}})
    with stand_in_hub(hub) as served:
        monkeypatch.setenv("HF_ENDPOINT", served.url)
        gated = prepare(
            load_config(prepare_config(write_config, "hf:THUDM/LongBench/2wikimqa_e/test", LLAMA)),
            ResultsLayout(tmp_path / "r"),
        )
        absent = prepare(
            load_config(prepare_config(write_config, "hf:THUDM/LongBench/2wikimqa_e/test", "org/nope")),
            ResultsLayout(tmp_path / "r"),
        )
        no_json = prepare(
            load_config(prepare_config(write_config, "hf:THUDM/LongBench/2wikimqa_e/test", "org/no-tokenizer")),
            ResultsLayout(tmp_path / "r"),
        )
    rule = "So tokens counted with FMBench's rule of 750 words = 1000 tokens."
    assert f"hf_tokenizer_model_id '{LLAMA}': the model {LLAMA} is gated on {served.url}" in gated.counter
    assert gated.counter.endswith(rule)
    assert f"the model org/nope does not exist on {served.url}" in absent.counter
    assert "org/no-tokenizer on" in no_json.counter and "has no tokenizer.json" in no_json.counter
    unreachable = prepare(
        load_config(prepare_config(write_config, "hf:THUDM/LongBench/2wikimqa_e/test", "org/other")),
        ResultsLayout(tmp_path / "r"),
    )
    assert (
        f"not in the Hugging Face cache ({hub_env}) and the hub could not be reached at {served.url}"
        in unreachable.counter
    )
    assert unreachable.records == 6  # the split came from the cache


def test_fmbench_s_longbench_sample_prepares_through_the_hub(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fmbench_fixtures: Path, cli_runner
) -> None:
    """FMBench's Bedrock sample lists seven hf:THUDM/LongBench splits; with no local copies, prepare
    fetches each from the hub's Parquet branch and fills the sample's payload files."""
    import shutil

    config = fmbench_fixtures / "configs" / "bedrock" / "config-bedrock-llama3-1-8b-streaming.yml"
    read = tmp_path / "read"
    shutil.copytree(fmbench_fixtures / "prompt_template", read / "prompt_template")
    hub = StandInHub()
    rows = longbench(hub)
    results = tmp_path / "results"
    with stand_in_hub(hub) as served:
        monkeypatch.setenv("HF_ENDPOINT", served.url)
        result = cli_runner.invoke(
            cli, ["prepare", str(config), "--results", str(results), "-A", f"read_tmpdir={read}"], terminal_width=200
        )
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    for subset in LONGBENCH_SUBSETS:
        note = (
            f"note: hf:THUDM/LongBench/{subset}/test: 6 records from {served.url}, THUDM/LongBench@refs/convert/parquet"
        )
        assert note in output
    loaded = load_config(config, {"read_tmpdir": str(read)})
    assert [s for s in loaded.config.s3_read_data.source_data_files] == [
        f"hf:THUDM/LongBench/{s}/test" for s in LONGBENCH_SUBSETS
    ]
    layout = ResultsLayout(results)
    table = pq.read_table(layout.prompts_dir(loaded.name) / "prompts.parquet").to_pylist()
    assert {row["source_file"] for row in table} == {f"hf:THUDM/LongBench/{s}/test" for s in LONGBENCH_SUBSETS}
    assert {row["record_id"] for row in table} <= {r["_id"] for subset in rows.values() for r in subset}
    payloads = layout.payload_dir(loaded.name)
    assert sorted(p.name for p in payloads.glob("*.jsonl")) == sorted(
        f.payload_file for f in loaded.config.datasets.filters
    )
    for flt in loaded.config.datasets.filters:
        lines = (payloads / flt.payload_file).read_text(encoding="utf-8").splitlines()
        assert len(lines) >= len(LONGBENCH_SUBSETS)  # a prompt of every subset
        for line in lines:
            record = json.loads(line)
            assert flt.min_length_in_tokens <= WordRule().count(record["inputs"]) < flt.max_length_in_tokens
            assert record["question"] in record["inputs"] and record["ground_truth"][0] in record["inputs"]
