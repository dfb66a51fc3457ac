"""Fast, table-driven tests of the pure parts: chunk parsers of every target, the AWS
event-stream encoding, the part-file claim, the backoff policy, the placeholder filler
and FMBench's requests-per-cell rule."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pytest
from botocore.eventstream import EventStreamBuffer

from fmb.collector.mock.eventstream import event, exception, json_event
from fmb.collector.plan import requests_per_cell
from fmb.collector.runner import Policy
from fmb.collector.targets.base import Usage
from fmb.collector.targets.bedrock import family_of
from fmb.collector.targets.containers import LlamaCppTarget, OllamaTarget, TritonTarget, tgi_chunk, tgi_whole
from fmb.collector.targets.sagemaker import parse_line, parse_whole
from fmb.collector.writer import claim_part
from fmb.config.placeholders import fill, parse_assignments
from fmb.errors import FmbError


@pytest.mark.parametrize(
    ("data", "text", "usage", "final"),
    [
        ({"token": {"text": "hi", "special": False}, "generated_text": None, "details": None}, "hi", None, False),
        ({"token": {"text": "</s>", "special": True}, "generated_text": "all", "details": None}, None, None, True),
        (
            {"token": {"text": "x"}, "generated_text": "x", "details": {"generated_tokens": 7}},
            "x",
            Usage(None, 7),
            True,
        ),
        ({"token": {"text": "x"}, "details": {"generated_tokens": "3"}}, "x", Usage(None, 3), True),
    ],
)
def test_tgi_stream_events(data: dict, text: str | None, usage: Usage | None, final: bool) -> None:
    chunk = tgi_chunk(data)
    assert (chunk.text, chunk.usage, chunk.final, chunk.error) == (text, usage, final, None)


@pytest.mark.parametrize(
    ("data", "text", "error"),
    [
        ([{"generated_text": "a b", "details": {"generated_tokens": 2}}], "a b", None),
        ({"generated_text": ""}, "", None),
        ({"error": "overloaded"}, None, "overloaded"),
    ],
)
def test_tgi_whole_answers(data, text: str | None, error: str | None) -> None:
    chunk = tgi_whole(data)
    assert (chunk.text, chunk.error) == (text, error)


@pytest.mark.parametrize("data", [{}, {"text": "no generated_text"}, []])
def test_a_tgi_answer_without_generated_text_is_not_an_answer(data) -> None:
    with pytest.raises((KeyError, IndexError)):
        tgi_whole(data)


@pytest.mark.parametrize(
    ("cls", "data", "text", "usage", "final"),
    [
        (OllamaTarget, {"response": "he", "done": False}, "he", None, False),
        (OllamaTarget, {"response": "", "done": True, "prompt_eval_count": 9, "eval_count": 4}, "", Usage(9, 4), True),
        (LlamaCppTarget, {"content": "lo", "stop": False}, "lo", None, False),
        (
            LlamaCppTarget,
            {"content": "", "stop": True, "tokens_evaluated": 5, "tokens_predicted": 2},
            "",
            Usage(5, 2),
            True,
        ),
        (TritonTarget, {"model_name": "m", "text_output": "t"}, "t", None, False),
    ],
)
def test_container_stream_lines(cls, data: dict, text: str, usage: Usage | None, final: bool) -> None:
    chunk = cls.chunk(None, data)  # the parsers read nothing from the instance
    assert (chunk.text, chunk.usage, chunk.final) == (text, usage, final)


@pytest.mark.parametrize(
    ("cls", "data"),
    [(OllamaTarget, {"model": "m"}), (LlamaCppTarget, {"stop": True}), (TritonTarget, {"model_name": "m"})],
)
def test_container_whole_answers_must_have_their_text_field(cls, data: dict) -> None:
    with pytest.raises(KeyError):
        cls.whole(None, data)


@pytest.mark.parametrize(
    ("line", "text", "error"),
    [
        (b'data:{"token": {"text": "a"}}', "a", None),  # TGI on SageMaker
        (b'{"token": {"text": "b"}}', "b", None),  # DJL JSON lines
        (b'data: {"choices": [{"delta": {"content": "c"}}]}', "c", None),  # the messages API
        (b"data: [DONE]", None, None),
        (b"", None, None),
        (b'{"error": "bad"}', None, "bad"),
    ],
)
def test_sagemaker_stream_lines(line: bytes, text: str | None, error: str | None) -> None:
    chunk = parse_line(line)
    assert (chunk.text, chunk.error) == (text, error)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ([{"generated_text": "g"}], "g"),
        ({"choices": [{"message": {"content": "m"}}]}, "m"),
        ({"embedding": [0.1, 0.2]}, ""),
    ],
)
def test_sagemaker_whole_answers(data, text: str) -> None:
    assert parse_whole(data).text == text


@pytest.mark.parametrize(
    ("model", "response", "text"),
    [
        ("meta.llama3-1-8b-instruct-v1:0", {"generation": "x"}, "x"),
        ("us.meta.llama3-1-8b-instruct-v1:0", {"generation": "y"}, "y"),
        ("mistral.mistral-7b-instruct-v0:2", {"outputs": [{"text": "z"}]}, "z"),
        ("anthropic.claude-3-haiku", {"content": [{"text": "a"}, {"text": "b"}]}, "ab"),
        ("amazon.titan-text-express-v1", {"results": [{"outputText": "t"}]}, "t"),
    ],
)
def test_bedrock_families_read_their_answers(model: str, response: dict, text: str) -> None:
    family = family_of(model)
    assert family is not None and family.text(response) == text
    assert isinstance(family.body("prompt", {"max_tokens": 5}), dict)


def decode(wire: bytes) -> list:
    buffer = EventStreamBuffer()
    buffer.add_data(wire)
    return list(buffer)


@pytest.mark.parametrize(
    ("wire", "event_type", "payload"),
    [
        (event("PayloadPart", b'{"token": 1}'), "PayloadPart", b'{"token": 1}'),
        (json_event("chunk", {"bytes": "eA=="}), "chunk", b'{"bytes": "eA=="}'),
        (event("PayloadPart", b""), "PayloadPart", b""),
    ],
)
def test_the_mock_writes_aws_event_streams_botocore_reads(wire: bytes, event_type: str, payload: bytes) -> None:
    (message,) = decode(wire)
    assert message.headers[":event-type"] == event_type and message.headers[":message-type"] == "event"
    assert message.payload.replace(b" ", b"") == payload.replace(b" ", b"")


def test_an_exception_event_and_two_messages_in_one_read() -> None:
    wire = event("PayloadPart", b"a") + exception("ModelStreamError", {"message": "boom"})
    first, second = decode(wire)
    assert first.headers[":event-type"] == "PayloadPart"
    assert second.headers[":message-type"] == "exception" and second.headers[":exception-type"] == "ModelStreamError"


def test_a_part_claims_the_next_free_number_and_never_overwrites(tmp_path: Path) -> None:
    table = pa.table({"x": [1]})
    (tmp_path / "part-00001.parquet").write_bytes(b"someone else's")
    paths = [claim_part(tmp_path, table) for _ in range(3)]
    assert [p.name for p in paths] == ["part-00002.parquet", "part-00003.parquet", "part-00004.parquet"]
    assert (tmp_path / "part-00001.parquet").read_bytes() == b"someone else's"
    assert not list(tmp_path.glob(".part-*"))  # no temporary file is left


@pytest.mark.parametrize(
    ("base", "attempt", "low", "high"),
    [(1.0, 1, 0.5, 1.0), (1.0, 2, 1.0, 2.0), (1.0, 3, 2.0, 4.0), (1.0, 10, 15.0, 30.0), (0.0, 5, 0.0, 0.0)],
)
def test_backoff_doubles_with_jitter_and_a_ceiling(base: float, attempt: int, low: float, high: float) -> None:
    random.seed(attempt)
    policy = Policy(backoff_s=base)
    waits = [policy.backoff(attempt) for _ in range(200)]
    assert all(low <= w <= high for w in waits)


@pytest.mark.parametrize(
    ("text", "values", "filled", "unfilled"),
    [
        ("a: {x}\n", {"x": "1"}, "a: 1\n", []),
        ("a: {x} # {y}\n", {"x": "1"}, "a: 1 # {y}\n", []),  # a comment is left alone
        ("a: '{{x}}'\n", {}, "a: '{x}'\n", []),  # an escaped brace is a literal
        ("a: {missing}\n", {}, "a: {missing}\n", [("missing", 1)]),
        ("a: payload_{lang}_{min}-{max}.jsonl\n", {}, "a: payload_{lang}_{min}-{max}.jsonl\n", []),  # late ones
        ("a: '#{x}'\n", {"x": "v"}, "a: '#v'\n", []),  # a # in quotes is no comment
    ],
)
def test_the_placeholder_filler(text: str, values: dict, filled: str, unfilled: list) -> None:
    out, missing = fill(text, values)
    assert out == filled
    assert [(u.name, u.line) for u in missing] == unfilled


@pytest.mark.parametrize(
    ("pairs", "values"), [(["a=1", " b = two "], {"a": "1", "b": "two"}), (["u=x=y"], {"u": "x=y"})]
)
def test_assignments(pairs: list[str], values: dict) -> None:
    assert parse_assignments(pairs) == values


@pytest.mark.parametrize("pair", ["novalue", "=x"])
def test_bad_assignments(pair: str) -> None:
    with pytest.raises(FmbError, match="not of the form key=value"):
        parse_assignments([pair])


@pytest.mark.parametrize(
    ("prompts", "concurrency", "min_iters", "max_iters", "requests"),
    [
        (10, 1, 1, 100, 10),  # one round per prompt
        (10, 4, 1, 100, 12),  # ceil(10 / 4) = 3 rounds of 4
        (10, 4, 5, 100, 20),  # at least 5 rounds
        (1000, 2, 1, 3, 6),  # at most 3 rounds
        (2, 8, 1, 100, 8),  # fewer prompts than slots: one full round
    ],
)
def test_requests_per_cell(prompts: int, concurrency: int, min_iters: int, max_iters: int, requests: int) -> None:
    assert requests_per_cell(prompts, concurrency, min_iters, max_iters) == requests
