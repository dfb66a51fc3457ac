"""Property-based tests: whatever config or payload file a user writes, fmb answers with its own error.

Hypothesis generates config texts (a valid config with values, keys and nesting replaced at
random, or with YAML snippets spliced into its text) and payload JSONL files. Loading them
may fail, but only with :class:`fmb.errors.FmbError`: never a traceback.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from rich.console import Console

from fmb.collector.plan import load_payload
from fmb.config import load_config
from fmb.errors import FmbError
from fmb.paths import ResultsLayout
from fmb.prepare.sources import read_jsonl
from fmb.summary import print_config_summary

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# A valid config touching every section fmb reads.
BASE: dict[str, Any] = {
    "general": {"name": "props", "model_name": "m"},
    "aws": {"region": "{region}"},
    "s3_read_data": {"source_data_files": ["synthetic:longbench"], "prompt_template_file": "t.txt"},
    "run_steps": {"1_generate_data.ipynb": True, "3_run_inference.ipynb": True},
    "datasets": {
        "prompt_template_keys": ["input", "context"],
        "min_iters_per_combination": 2,
        "max_iters_per_combination": 5,
        "synthetic": {"records": 10, "max_context_words": 100},
        "filters": [
            {
                "language": "en",
                "min_length_in_tokens": 1,
                "max_length_in_tokens": 500,
                "payload_file": "payload_{lang}_{min}-{max}.jsonl",
            },
        ],
    },
    "metrics": {"dataset_of_interest": "en_1-500"},
    "pricing": "pricing.yml",
    "inference_parameters": {"openai": {"max_tokens": 10, "temperature": 0.1, "stop": ["\n"]}},
    "experiments": [
        {
            "name": "e1",
            "api": "openai-chat",
            "endpoint_url": "http://127.0.0.1:9/v1",
            "instance_type": "g5.xlarge",
            "instance_count": 1,
            "stream": True,
            "headers": {"X-Tenant": "t1"},
            "inference_spec": {"parameter_set": "openai", "headers": {"Accept": "application/json"}},
            "payload_files": ["payload_en_1-500.jsonl"],
            "concurrency_levels": [1, 2],
            "warmup_requests": 1,
            "request_timeout_s": 30,
        },
        {
            "name": "e2",
            "inference_script": "ec2_predictor.py",
            "ep_name": "http://localhost:8080/generate",
            "inference_spec": {"container_type": "tgi", "stream": False},
            "deploy": False,
            "local": {"server": "command", "command": ["x", "{port}"], "ready_url": "http://127.0.0.1:{port}/"},
            "payload_files": ["payload_en_1-500.jsonl"],
            "concurrency_levels": [4],
        },
    ],
    "report": {"latency_budget": 2, "cost_per_10k_txn_budget": 1, "error_rate_budget": 0},
}

# Text with everything a hostile config may hold: control characters, lone surrogates,
# placeholders, YAML syntax.
_chars = st.characters(codec=None, exclude_categories=())
_text = st.one_of(
    st.text(_chars, max_size=12),
    st.sampled_from(
        [
            "{x}",
            "{lang}",
            "{port}",
            "{{x}}",
            "{region}",
            "{",
            "}",
            "a: b",
            "- x",
            "&a",
            "*a",
            "!!binary",
            "\r\n",
            "\x00",
            "\ud800",
            "../x",
            "/etc/passwd",
            "http://[::1",
            "yes",
            "~",
        ]
    ),
)
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-10, max_value=5000),
    st.floats(allow_nan=True, allow_infinity=True),
    _text,
    st.dates(),
    st.datetimes(),
    st.binary(max_size=8),
    st.sets(st.integers(0, 3), max_size=3),
)
_keys = st.one_of(
    _text,
    st.sampled_from(
        [
            "name",
            "stream",
            "headers",
            "payload_file",
            "concurrency_levels",
            "parameter_set",
            "endpoint_url",
            "api",
            "local",
            "filters",
        ]
    ),
    st.integers(0, 3),
    st.booleans(),
    st.none(),
    st.dates(),
)
_values = st.recursive(
    _leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4), max_leaves=12
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _paths(child, (*prefix, i))


PATHS = list(_paths(BASE))[1:]


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Values of the same kind as ``value``, many of them valid, some at the edges."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.one_of(st.integers(-2, 10), st.integers(0, 5000), st.sampled_from([4096, 4097, 10**9, 2**63, 2**64]))
    if isinstance(value, float):
        return st.floats(-1e6, 1e6) | st.sampled_from([0.0, 3600.0, 3601.0, 1e308])
    if isinstance(value, str):
        return st.one_of(
            st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12),
            _text,
            st.sampled_from(["http://localhost:8000/v1", "http://[::1]:8/v1", "http://h:0", "x.jsonl"]),
        )
    if isinstance(value, list):
        return st.lists(_like(value[0]) if value else _values, max_size=4)
    return _values


@st.composite
def mutated_configs(draw: st.DrawFn) -> Any:
    """BASE with a few values replaced (mostly by values of the same kind), keys added or removed."""
    data = json.loads(json.dumps(BASE))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent: Any = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            last = path[-1]
            action = draw(st.sampled_from(["like", "like", "like", "replace", "delete", "add"]))
            if action == "like":
                parent[last] = draw(_like(parent[last]))
            elif action == "replace":
                parent[last] = draw(_values)
            elif action == "delete":
                del parent[last]
            elif isinstance(parent, dict):
                parent[draw(_keys)] = draw(_values)
            elif isinstance(parent, list):
                parent.append(draw(_values))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    return data


SNIPPETS = [
    "{x}",
    "{lang}",
    "{{",
    "}}",
    "{port}",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "*a",
    "!!binary ",
    "!!set ",
    "!!python/object ",
    "2024-01-01",
    "1e999",
    ".nan",
    "0x" + "f" * 40,
    "1" * 5000,
    "\t",
    "\r",
    "\x00",
    "\x85",
    "\u2028",
    "\ufeff",
    "#",
    "'",
    '"',
    "\\",
    "? ",
    "<<: *a",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "\n  ",
    "\n- ",
    "!!int x",
    "!!float y",
    "!!timestamp 2024-99-99",
    "[" * 500,
    "true",
    "~",
]


@st.composite
def spliced_texts(draw: st.DrawFn) -> str:
    """The YAML text of BASE with snippets inserted at random places."""
    text = yaml.safe_dump(BASE, sort_keys=False, default_flow_style=draw(st.booleans()))
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(text)))
        snippet = draw(
            st.one_of(
                st.sampled_from(SNIPPETS),
                st.sampled_from(SNIPPETS),
                st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6),
            )
        )
        text = text[:at] + snippet + text[at:]
    return text


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def _load_and_summarise(path: Path, folder: Path, assignments: dict[str, str] | None = None) -> None:
    """What `fmb config check` does: load, then print the summary; only FmbError may come out."""
    try:
        loaded = load_config(path, assignments, results_dir=folder / "results")
    except FmbError as err:
        event("refused: " + str(err).partition(": ")[2][:40])
        return
    event("loads")
    loaded.redacted()
    assert len(loaded.config_hash) == 16
    console = Console(file=io.StringIO(), width=120)
    print_config_summary(console, loaded, ResultsLayout(folder / "results"))
    json.dumps(loaded.redacted())  # stored as raw/runs.config_json
    for exp in loaded.experiments:
        json.dumps(exp.parameters, allow_nan=False)  # sent as the request body
        assert isinstance(exp.stream, bool) and exp.stream_source


def _dump(data: Any, unicode: bool) -> str:
    try:
        return yaml.safe_dump(data, allow_unicode=unicode, sort_keys=False)
    except (yaml.YAMLError, UnicodeError, TypeError):
        assume(False)
        raise AssertionError("unreachable") from None


@SETTINGS
@given(data=mutated_configs(), unicode=st.booleans())
def test_mutated_configs_load_or_raise_fmb_errors(folder: Path, data: Any, unicode: bool) -> None:
    path = folder / "config.yml"
    path.write_text(_dump(data, unicode), encoding="utf-8", errors="surrogatepass")
    _load_and_summarise(path, folder)


@SETTINGS
@given(
    text=spliced_texts(),
    assignments=st.dictionaries(st.sampled_from(["x", "lang", "region", "port"]), _text, max_size=3),
)
def test_spliced_config_texts_load_or_raise_fmb_errors(folder: Path, text: str, assignments: dict[str, str]) -> None:
    path = folder / "config.yml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _load_and_summarise(path, folder, assignments)


@SETTINGS
@given(cut=st.integers(0, 2000), raw=st.binary(max_size=20) | st.text(max_size=20).map(str.encode))
def test_config_bytes_load_or_raise_fmb_errors(folder: Path, cut: int, raw: bytes) -> None:
    """A config cut short anywhere (an editor crashed, a copy failed), with bytes after the cut."""
    path = folder / "config.yml"
    path.write_bytes(yaml.safe_dump(BASE, sort_keys=False).encode()[:cut] + raw)
    _load_and_summarise(path, folder)


def test_a_valid_base_loads(folder: Path) -> None:
    path = folder / "base.yml"
    path.write_text(yaml.safe_dump(BASE), encoding="utf-8")
    loaded = load_config(path, results_dir=folder / "results")
    assert [e.stream for e in loaded.experiments] == [True, False]


# --- Payload files ----------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(_chars, max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(_chars, max_size=5), inner, max_size=3),
    max_leaves=8,
)
_lines = st.one_of(
    st.builds(lambda v: json.dumps(v), _json),
    st.builds(lambda v: json.dumps({"inputs": v}), _json),
    st.builds(lambda v, a: json.dumps({"inputs": v}, ensure_ascii=a), st.text(_chars, max_size=20), st.booleans()),
    st.sampled_from(
        [
            '{"inputs": "\\ud800"}',
            '{"inputs": "a\\udfff"}',
            '{"inputs": 1' + "0" * 5000 + "}",
            "[" * 100_000,
            '{"inputs": "x"} trailing',
            "NaN",
            '{"inputs": "x", "inputs": 2}',
            "\ufeff{}",
            '{"inputs": "ok"}',
            "",
            " ",
            "\r",
            '{"inputs": "a\u2028b"}',
        ]
    ),
    st.text(_chars, max_size=20),
)


@st.composite
def payload_bytes(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(_lines, max_size=6))
    body = "\n".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(max_size=4)) + body[at:]
    return body


@SETTINGS
@given(body=payload_bytes())
def test_payload_files_load_or_raise_fmb_errors(folder: Path, body: bytes) -> None:
    path = folder / "payload.jsonl"
    path.write_bytes(body)
    try:
        records = read_jsonl(path)
    except FmbError:
        records = None
    if records is not None:
        assert all(isinstance(r, dict) for r in records)
    try:
        requests = load_payload(path)
    except FmbError:
        return
    for request in requests:
        request.prompt.encode("utf-8")  # every prompt is text that can be sent


def test_payload_loader_refuses_what_cannot_be_sent(folder: Path) -> None:
    """Crashes the property tests found, each now an error that names the file and line."""
    cases = {
        '{"inputs": "ok"}\n{"inputs": "\\ud800"}\n': "line 2",
        '{"inputs": 1' + "0" * 5000 + "}\n": "line 1",
        "[" * 100_000 + "\n": "line 1",
    }
    for body, where in cases.items():
        path = folder / "bad.jsonl"
        path.write_text(body, encoding="utf-8")
        with pytest.raises(FmbError, match=where):
            read_jsonl(path)
        with pytest.raises(FmbError, match=where):
            load_payload(path)


def test_the_dates_hypothesis_draws_are_refused(folder: Path) -> None:
    data = json.loads(json.dumps(BASE))
    data["inference_parameters"]["openai"]["since"] = dt.date(2024, 1, 1)
    path = folder / "date.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(FmbError, match=r"inference_parameters\.openai\.since: 2024-01-01 is read by YAML as a date"):
        load_config(path, results_dir=folder / "results")
