"""Secrets never reach a file fmb writes or a line it prints.

Distinct random secrets are planted in every place a config can hold one (a header, an
inference_spec header, a -A value used in a header, URL userinfo, an api_key_env variable),
sent to mock endpoints that echo request headers back (in completion text and error bodies),
and every byte under the results folder, every string in its tables and every command's
output is searched for them.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import sys
from pathlib import Path
from textwrap import dedent

import duckdb
import pyarrow.parquet as pq
import pytest

from fmb.cli import cli
from fmb.collector.mock.process import mock_server
from fmb.config import load_config
from fmb.redact import MASK, MIN_SECRET_LENGTH, Redactor, assignment_secrets, header_secrets, url_secrets
from fmb.warehouse.build import warehouse_path

pytestmark = pytest.mark.slow  # servers in subprocesses, dbt builds or a real model


def planted() -> dict[str, str]:
    return {
        name: f"{name[:3]}{secrets.token_hex(10)}"
        for name in ("header", "spec_header", "tenant", "url_user", "url_password", "api_key")
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(tmp_path: Path, s: dict[str, str], brought: str, port: int) -> Path:
    mock = [
        sys.executable,
        "-m",
        "fmb",
        "mock-server",
        "--port",
        str(port),
        "--ttft-ms",
        "2",
        "--itl-ms",
        "1",
        "--output-tokens",
        "6",
        "--error-rate",
        "0.3",
        "--echo-headers",
        "true",
    ]
    text = dedent(
        f"""
        general: {{name: secrets-bench, model_name: mock}}
        s3_read_data: {{source_data_files: ["synthetic:longbench"]}}
        datasets:
          prompt_template_keys: [input, context]
          synthetic: {{records: 12, max_context_words: 40}}
          min_iters_per_combination: 4
          max_iters_per_combination: 4
          filters:
          - {{language: en, min_length_in_tokens: 1, max_length_in_tokens: 1000, payload_file: payload_en_1-1000.jsonl}}
        inference_parameters:
          chat: {{max_tokens: 6}}
        experiments:
        - name: deployed-with-userinfo
          api: openai-chat
          instance_type: local.cpu
          deploy: yes
          deployment_script: local.py
          local:
            server: command
            command: {json.dumps(mock)}
            ready_url: http://127.0.0.1:{port}/health
            startup_timeout_s: 60
          endpoint_url: http://{s["url_user"]}:{s["url_password"]}@127.0.0.1:{port}/v1
          stream: true
          headers:
            X-Auth-Key: {s["header"]}
            X-Tenant: "{{tenant}}"
            User-Agent: fmb-secrets-test
          inference_spec:
            parameter_set: chat
            headers: {{X-Spec-Key: {s["spec_header"]}}}
          payload_files: [payload_en_1-1000.jsonl]
          concurrency_levels: [1, 2]
        - name: brought-with-api-key
          api: openai-chat
          endpoint_url: {brought}/v1
          api_key_env: FMB_SECRETS_TEST_KEY
          stream: false
          inference_spec: {{parameter_set: chat}}
          payload_files: [payload_en_1-1000.jsonl]
          concurrency_levels: [2]
        """
    )
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    return path


def forms(s: dict[str, str]) -> dict[str, bytes]:
    """Each secret as it could be found: as written, and the HTTP basic credential of the userinfo."""
    found = {name: value.encode() for name, value in s.items()}
    basic = base64.b64encode(f"{s['url_user']}:{s['url_password']}".encode())
    found["basic_credential"] = basic
    return found


def strings_in(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in strings_in(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in strings_in(v)]
    return []


def table_strings(results: Path) -> dict[str, list[str]]:
    """Every string in every Parquet file and every DuckDB table under results, by where it was read."""
    found: dict[str, list[str]] = {}
    for path in results.rglob("*.parquet"):
        found[str(path)] = strings_in(pq.read_table(path).to_pylist())
    con = duckdb.connect(str(warehouse_path(results)), read_only=True)
    try:
        tables = con.execute("select table_schema, table_name from information_schema.tables").fetchall()
        for schema, name in tables:
            rows = con.execute(f'select * from "{schema}"."{name}"').fetchall()
            found[f"duckdb {schema}.{name}"] = strings_in([list(r) for r in rows])
    finally:
        con.close()
    return found


def test_planted_secrets_reach_no_file_and_no_output(tmp_path: Path, cli_runner, monkeypatch) -> None:
    s = planted()
    monkeypatch.setenv("FMB_SECRETS_TEST_KEY", s["api_key"])
    results = tmp_path / "results"
    outputs: dict[str, str] = {}

    def fmb(name: str, *args: str, code: int = 0) -> str:
        result = cli_runner.invoke(cli, list(args), terminal_width=300)
        outputs[name] = result.output
        assert result.exit_code == code, (name, result.output, result.exception)
        return result.output

    with mock_server(ttft_ms=2, itl_ms=1, output_tokens=6, error_rate=0.3, echo_headers=True) as brought:
        config = write_config(tmp_path, s, brought, free_port())
        common = [str(config), "--results", str(results), "-A", f"tenant={s['tenant']}"]
        checked = fmb("config check", "config", "check", *common)
        fmb("prepare", "prepare", *common)
        fmb("deploy", "deploy", *common)
        record = (results / "deployments" / "secrets-bench.json").read_text()
        try:
            fmb("collect", "collect", *common)
        finally:
            fmb("cleanup", "cleanup", *common)
    fmb("build", "build", "--results", str(results))
    fmb("report", "report", "--results", str(results))

    # The secrets were really sent and echoed back, and are masked where they came back.
    rows = [r for p in (results / "raw" / "requests").rglob("*.parquet") for r in pq.read_table(p).to_pylist()]
    echoed = [r["completion_text"] for r in rows if r["status"] == "ok"]
    assert echoed and all("x-auth-key: ***" in t.lower() or "authorization: bearer ***" in t.lower() for t in echoed)
    assert any("Authorization: Basic ***" in t and "X-Tenant: ***" in t and "X-Spec-Key: ***" in t for t in echoed)
    errors = [r["error_message"] for r in rows if r["status"] == "error"]
    assert errors and any("X-Auth-Key: ***" in m for m in errors) and any("Bearer ***" in m for m in errors)
    assert "endpoint: http://***@127.0.0.1:" in checked
    assert '"endpoint": "http://***@127.0.0.1:' in record
    experiments = [
        r for p in (results / "raw" / "experiments").rglob("*.parquet") for r in pq.read_table(p).to_pylist()
    ]
    assert {r["endpoint"].split("@")[0] for r in experiments if r["deployed"]} == {"http://***"}
    report = next((results / "reports").rglob("report.md")).read_text()
    assert "X-Auth-Key: '***'" in report and "User-Agent: fmb-secrets-test" in report  # harmless headers print

    secret_forms = forms(s)
    for path in results.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for name, value in secret_forms.items():
                assert value not in data, (name, path)
    for where, values in table_strings(results).items():
        text = "\n".join(values)
        for name, value in secret_forms.items():
            assert value.decode() not in text, (name, where)
    for command, output in outputs.items():
        for name, value in secret_forms.items():
            assert value.decode() not in output, (name, command)


def test_error_messages_mask_url_credentials(tmp_path: Path, cli_runner) -> None:
    user, password = "u" + secrets.token_hex(6), "p" + secrets.token_hex(8)
    config = tmp_path / "config.yml"
    config.write_text(
        dedent(f"""
        general: {{name: unreachable}}
        experiments:
        - name: nowhere
          api: openai-chat
          endpoint_url: http://{user}:{password}@127.0.0.1:9/v1
          payload_files: [p.jsonl]
          concurrency_levels: [1]
        """)
    )
    payloads = tmp_path / "results" / "payloads" / "unreachable"
    payloads.mkdir(parents=True)
    (payloads / "p.jsonl").write_text('{"inputs": "hello"}\n')
    result = cli_runner.invoke(
        cli, ["collect", str(config), "--results", str(tmp_path / "results")], terminal_width=300
    )
    assert result.exit_code == 1 and "cannot reach http://***@127.0.0.1:9/v1" in result.output, result.output
    assert user not in result.output and password not in result.output


def test_a_bad_header_value_is_not_shown_in_the_error(write_config) -> None:
    from fmb.errors import ConfigError

    hidden = "h" + secrets.token_hex(8)
    path = write_config(f"""
        general: {{name: bad-header}}
        experiments:
        - name: e
          endpoint_url: http://127.0.0.1:9/v1
          api: openai-chat
          headers: {{X-Key: [{hidden}]}}
          payload_files: [p.jsonl]
          concurrency_levels: [1]
        """)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "headers" in str(caught.value) and hidden not in str(caught.value)


def test_masking_rules() -> None:
    assert header_secrets({"X-Api": "Token abcdefgh12345678", "Content-Type": "application/json", "Accept": "*/*"}) == [
        "Token abcdefgh12345678",
        "abcdefgh12345678",
    ]  # the value, and its long parts; harmless headers print

    credentials, words = assignment_secrets(
        {
            "tenant": "acme-corp",
            "region": "us-west-2",
            "tp_degree": "8",
            "flag": "true",
            "api_key": "k3y!",
            "model_id": "meta/llama",
        },
        ["Tenant acme-corp"],
    )
    assert credentials == ["acme-corp", "k3y!"]  # used in a header; a secret-looking name
    assert words == []  # allow-listed names, numbers and booleans are left alone
    _, words = assignment_secrets({"tier": "gold", "project": "atlas"}, [])
    assert words == ["gold", "atlas"]

    redact = Redactor(["abcdefgh12345678", "Token abcdefgh12345678", "abc"], ["gold"])
    assert redact("echo X-Api: Token abcdefgh12345678") == f"echo X-Api: {MASK}"
    assert redact("golden gold, gold!") == f"golden {MASK}, {MASK}!"  # -A values as whole words only
    assert len("abc") < MIN_SECRET_LENGTH and redact("abc is too short to mask") == "abc is too short to mask"
    body = "x" * 290 + "abcdefgh12"  # an error body already cut at 300 characters, in a secret
    assert redact.shortened(body, 300) == "x" * 290 + MASK
    assert redact.shortened("a short message that ends in abcd", 300) == "a short message that ends in abcd"
    assert redact.known("sk-notaknownkey1234 stays") == "sk-notaknownkey1234 stays"  # response text: known values only

    creds, users = url_secrets("see https://alice:p%40ss@host/v1 and https://TOKEN123@host")
    assert set(creds) == {"p%40ss", "p@ss", base64.b64encode(b"alice:p@ss").decode(), "TOKEN123"}
    assert users == ["alice", "alice"]
