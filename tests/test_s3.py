"""Configs, read data and results in S3 (fmb.storage), against moto's S3 server.

The real boto3 calls run against moto in a thread of the test process; nothing is patched.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

from fmb.cli import cli
from fmb.errors import FmbError
from fmb.paths import BUNDLED_PRICING, slug
from fmb.storage import Mirror, S3Url, results_place
from tests.aws_servers import CREDENTIALS, moto_server
from tests.conftest import ROOT
from tests.test_aws import no_real_aws  # noqa: F401 - the same isolation from the machine's AWS settings
from tests.test_fmbench_fixtures import fmbench_fixtures_module, write_read_dir  # noqa: F401 - fixtures

TOKEN = "hf_s3_test_token_never_written_4f9a"


@pytest.fixture
def moto(no_real_aws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    """moto's S3, and boto3's chain pointed at it (as AWS_ENDPOINT_URL_S3 and keys in the environment)."""
    with moto_server() as url:
        # moto keeps its state in the test process: every test starts with no bucket.
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).close()
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
        monkeypatch.setenv("FMB_CACHE_DIR", str(tmp_path / "cache"))
        yield url


def s3(url: str) -> Any:
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1", **CREDENTIALS)


def keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(entry["Key"] for page in pages for entry in page.get("Contents", []))


def upload_tree(client: Any, bucket: str, root: Path, prefix: str = "") -> None:
    for path in root.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, prefix + path.relative_to(root).as_posix())


# -- the working copy ---------------------------------------------------------------------------


def test_mirror_pushes_what_changed_and_keeps_hidden_files_and_dbt_local(moto: str, tmp_path: Path) -> None:
    client = s3(moto)
    client.create_bucket(Bucket="results-bucket")
    local = tmp_path / "copy"
    (local / "raw" / "runs" / "run_id=r1").mkdir(parents=True)
    (local / "raw" / "runs" / "run_id=r1" / "run.parquet").write_bytes(b"running")
    (local / "raw" / "runs" / "run_id=r1" / ".collector.lock").write_text("{}")
    (local / "raw" / "requests" / ".journal-1.jsonl").parent.mkdir(parents=True)
    (local / "raw" / "requests" / ".journal-1.jsonl").write_text("{}")
    (local / "dbt" / "logs").mkdir(parents=True)
    (local / "dbt" / "logs" / "dbt.log").write_text("log")
    mirror = Mirror(local, S3Url("results-bucket", "team/data"))

    assert mirror.push() == 1
    assert keys(client, "results-bucket") == ["team/data/raw/runs/run_id=r1/run.parquet"]
    assert mirror.push() == 0  # nothing changed
    (local / "raw" / "runs" / "run_id=r1" / "run.parquet").write_bytes(b"finished, longer")
    assert mirror.push() == 1
    body = client.get_object(Bucket="results-bucket", Key="team/data/raw/runs/run_id=r1/run.parquet")["Body"]
    assert body.read() == b"finished, longer"

    # Another host's copy pulls only the folder it asks for, then only what changed.
    client.put_object(Bucket="results-bucket", Key="team/data/marts/cells/cells.parquet", Body=b"cells")
    other = Mirror(tmp_path / "other", S3Url("results-bucket", "team/data"))
    assert other.pull("raw") == 1
    assert not (tmp_path / "other" / "marts").exists()
    assert (tmp_path / "other" / "raw" / "runs" / "run_id=r1" / "run.parquet").read_bytes() == b"finished, longer"
    assert other.pull("raw") == 0
    assert other.push() == 0  # what it pulled is not sent back
    assert other.pull("marts/cells/cells.parquet") == 1  # one file by its name


def test_two_collectors_never_replace_each_others_part_file(moto: str, tmp_path: Path) -> None:
    client = s3(moto)
    client.create_bucket(Bucket="results-bucket")
    part = Path("raw/requests/experiment=e/run_id=r/part-00000.parquet")
    for host, rows in (("a", b"rows of a"), ("b", b"rows of b")):
        (tmp_path / host / part).parent.mkdir(parents=True)
        (tmp_path / host / part).write_bytes(rows)
    Mirror(tmp_path / "a", S3Url("results-bucket", "")).push()
    with pytest.raises(FmbError, match="another collector already wrote a different part file under this key"):
        Mirror(tmp_path / "b", S3Url("results-bucket", "")).push()
    assert client.get_object(Bucket="results-bucket", Key=part.as_posix())["Body"].read() == b"rows of a"


def test_pushing_sends_finished_files_while_the_block_still_runs(moto: str, tmp_path: Path) -> None:
    """What a collector killed mid-run had finished is in the bucket already, not only at the end."""
    import time

    client = s3(moto)
    client.create_bucket(Bucket="results-bucket")
    mirror = Mirror(tmp_path / "copy", S3Url("results-bucket", "data"))
    part = tmp_path / "copy" / "raw" / "requests" / "experiment=e" / "run_id=r" / "part-00000.parquet"
    part.parent.mkdir(parents=True)
    with mirror.pushing(interval_s=0.05):
        part.write_bytes(b"rows")
        (part.parent / ".journal-abc.jsonl").write_text("{}")  # unfinished rows stay local
        deadline = time.monotonic() + 10
        while not keys(client, "results-bucket") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert keys(client, "results-bucket") == ["data/raw/requests/experiment=e/run_id=r/part-00000.parquet"]
        late = part.with_name("part-00001.parquet")
        late.write_bytes(b"more rows")
    assert len(keys(client, "results-bucket")) == 2  # the last push, at the end of the block


def test_results_place_errors_name_the_location(moto: str) -> None:
    with pytest.raises(FmbError, match="s3://no-such-bucket/x: the bucket does not exist"):
        results_place("s3://no-such-bucket/x")
    with pytest.raises(FmbError, match="not at a URL"):
        results_place("https://example.invalid/results")
    assert results_place("some/folder").mirror is None


def test_fmb_build_on_a_missing_bucket_is_one_clear_error(moto: str, cli_runner) -> None:
    result = cli_runner.invoke(cli, ["build", "--results", "s3://no-such-bucket/data"])
    assert result.exit_code == 1
    assert "s3://no-such-bucket/data: the bucket does not exist" in result.output
    assert "Traceback" not in result.output


# -- configs at URLs -----------------------------------------------------------------------------

SMALL = """
general: {name: from-a-url}
s3_read_data: {source_data_files: ["synthetic:longbench"]}
datasets:
  prompt_template_keys: [input, context]
  synthetic: {records: 8, max_context_words: 60}
  filters:
  - {language: en, min_length_in_tokens: 1, max_length_in_tokens: 1000, payload_file: payload_en_1-1000.jsonl}
experiments:
- name: brought
  endpoint_url: http://127.0.0.1:9/v1
  inference_spec: {backend: openai_chat}
  payload_files: [payload_en_1-1000.jsonl]
  concurrency_levels: [1]
"""


@pytest.fixture
def http_files() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A plain HTTP server on port 0 serving the files of a dict (404 for others)."""
    files: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", files
    finally:
        server.shutdown()
        server.server_close()


def test_config_from_https_and_s3_urls(moto: str, http_files, cli_runner) -> None:
    base, files = http_files
    files["/configs/small.yml"] = SMALL.encode()
    result = cli_runner.invoke(cli, ["config", "check", f"{base}/configs/small.yml"])
    assert result.exit_code == 0, result.output
    assert "from-a-url" in result.output

    result = cli_runner.invoke(cli, ["config", "check", f"{base}/configs/none.yml"])
    assert result.exit_code == 1
    assert f"{base}/configs/none.yml: the server answered 404" in result.output

    client = s3(moto)
    client.create_bucket(Bucket="config-bucket")
    client.put_object(Bucket="config-bucket", Key="team/small.yml", Body=SMALL.encode())
    result = cli_runner.invoke(cli, ["config", "check", "s3://config-bucket/team/small.yml"])
    assert result.exit_code == 0, result.output
    result = cli_runner.invoke(cli, ["config", "check", "s3://config-bucket/team/gone.yml"])
    assert result.exit_code == 1
    assert "s3://config-bucket/team/gone.yml: there is no such key" in result.output


def test_an_s3_write_mode_without_a_bucket_names_the_key(moto: str, write_config, cli_runner) -> None:
    path = write_config(SMALL + "aws: {bucket: '{write_bucket}', s3_and_or_local_file_system: s3}\n")
    result = cli_runner.invoke(cli, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert "aws.bucket: s3_and_or_local_file_system is s3, but no write bucket is named" in result.output
    assert "-A write_bucket=BUCKET" in result.output


# -- an FMBench sample config, from its bucket to a report in the write bucket --------------------


@pytest.mark.slow
def test_fmbench_sample_config_runs_from_s3_to_a_report_in_the_write_bucket(
    moto: str,
    fmbench_fixtures_module: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli_runner,
) -> None:
    from fmb.collector.mock.process import mock_server

    client = s3(moto)
    for bucket in ("fmbench-read", "fmbench-write", "fmbench-configs"):
        client.create_bucket(Bucket=bucket)
    # The read bucket as FMBench lays it out: source data, prompt templates, pricing, the HF token.
    (tmp_path / "read").mkdir()
    read = write_read_dir(tmp_path / "read", fmbench_fixtures_module)
    upload_tree(client, "fmbench-read", read)
    client.upload_file(str(BUNDLED_PRICING), "fmbench-read", "configs/pricing.yml")
    client.put_object(Bucket="fmbench-read", Key="scripts/hf_token.txt", Body=TOKEN.encode())
    sample = fmbench_fixtures_module / "configs" / "bedrock" / "config-bedrock-llama3-1-8b-streaming.yml"
    client.upload_file(str(sample), "fmbench-configs", "bedrock/config-bedrock-llama3-1-8b-streaming.yml")

    with mock_server(ttft_ms=5, itl_ms=0.5, output_tokens=20, reply="judge") as runtime:
        args = ["-A", "read_bucket=fmbench-read", "-A", "write_bucket=fmbench-write"]
        args += ["-A", f"bedrock_runtime_endpoint_url={runtime}"]
        result = cli_runner.invoke(
            cli,
            ["run", "s3://fmbench-configs/bedrock/config-bedrock-llama3-1-8b-streaming.yml", "--quiet", *args],
            terminal_width=200,
        )
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output

    written = keys(client, "fmbench-write")
    assert all(k.startswith("data/") for k in written)  # dir_paths.data_prefix
    report = f"data/reports/{slug('fmbench-bedrock-llama3-1')}"
    names = {k.removeprefix(report + "/") for k in written if k.startswith(report + "/")}
    assert {"report.md", "per_inference_request_results.csv", "all_metrics.csv"} <= names
    assert any(n.endswith(".png") for n in names)
    assert any(k.startswith("data/raw/requests/") and k.endswith(".parquet") for k in written)
    assert any(k.startswith("data/payloads/") and k.endswith(".jsonl") for k in written)
    assert "data/marts/cells/cells.parquet" in written and "data/warehouse.duckdb" in written
    assert not [k for k in written if k.startswith("data/dbt/") or "/." in k]  # local-only files stay local
    report_text = client.get_object(Bucket="fmbench-write", Key=f"{report}/report.md")["Body"].read().decode()
    assert "Report:" in result.output and f"s3://fmbench-write/{report}/report.md" in result.output
    for key in written:  # the token from the read bucket is nowhere in the write bucket ...
        assert TOKEN.encode() not in client.get_object(Bucket="fmbench-write", Key=key)["Body"].read(), key
    for path in (tmp_path / "cache").rglob("*"):  # ... nor in fmb's cache
        assert not path.is_file() or TOKEN.encode() not in path.read_bytes(), path

    # Another host, with an empty cache, builds and reports from the bucket alone.
    first_cells = pq.read_table(tmp_path / "cache" / "results" / "fmbench-write" / "data" / "marts" / "cells").num_rows
    monkeypatch.setenv("FMB_CACHE_DIR", str(tmp_path / "other-host"))
    built = cli_runner.invoke(cli, ["build", "--results", "s3://fmbench-write/data"], terminal_width=200)
    assert built.exit_code == 0, built.output
    assert "marts in s3://fmbench-write/data/marts" in built.output
    assert (tmp_path / "other-host" / "results" / "fmbench-write" / "data" / "warehouse.duckdb").is_file()
    reported = cli_runner.invoke(cli, ["report", "--results", "s3://fmbench-write/data"], terminal_width=200)
    assert reported.exit_code == 0, reported.output
    assert f"s3://fmbench-write/{report}/report.md" in reported.output
    cells = pq.read_table(tmp_path / "other-host" / "results" / "fmbench-write" / "data" / "marts" / "cells")
    assert cells.num_rows == first_cells > 0
    again = client.get_object(Bucket="fmbench-write", Key=f"{report}/report.md")["Body"].read().decode()
    assert again.count("### ") == report_text.count("### ")


# -- dbt over raw tables in S3, without a local copy ----------------------------------------------


@pytest.mark.slow
def test_dbt_reads_raw_from_s3_and_writes_marts_there_with_the_same_rows(moto: str, tmp_path: Path) -> None:
    """`FMB_RAW=s3://... FMB_MARTS=s3://... dbt build`: DuckDB reads and writes S3 through fmb's plugin."""
    from datetime import UTC, datetime

    import duckdb

    from fmb.warehouse.build import _environment, _run_dbt, build, warehouse_path
    from tests.rawdata import write_run

    local = tmp_path / "local"
    for seed in (1, 2):
        write_run(tmp_path, local, seed, datetime(2026, 1, seed, tzinfo=UTC))
    build(local)  # also writes the empty tables a build needs beside the runs
    client = s3(moto)
    client.create_bucket(Bucket="warehouse-bucket")
    upload_tree(client, "warehouse-bucket", local / "raw", "team/raw/")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"FMB_RAW": "s3://warehouse-bucket/team/raw", "FMB_MARTS": "s3://warehouse-bucket/team/marts"}
    with _environment(**env):
        outcome = _run_dbt(
            elsewhere,
            [
                "build",
                "--select",
                "+cells",
                "--indirect-selection",
                "cautious",
                "--project-dir",
                str(ROOT),
                "--profiles-dir",
                str(ROOT),
                "--quiet",
            ],
        )
    assert outcome.success, outcome.exception
    assert not (elsewhere / "raw").exists() and not (elsewhere / "marts").exists()
    exported = keys(client, "warehouse-bucket", "team/marts/")
    assert "team/marts/cells/cells.parquet" in exported
    query = "select * from cells order by all"
    with duckdb.connect(str(warehouse_path(local)), read_only=True) as con:
        here = con.execute(query).fetchall()
    with duckdb.connect(str(warehouse_path(elsewhere)), read_only=True) as con:
        there = con.execute(query).fetchall()
    assert there == here and len(here) > 0
    body = client.get_object(Bucket="warehouse-bucket", Key="team/marts/cells/cells.parquet")["Body"].read()
    (tmp_path / "cells.parquet").write_bytes(body)
    assert pq.read_table(tmp_path / "cells.parquet").num_rows == len(here)


def test_both_keeps_results_in_the_local_folder_and_in_the_write_bucket(
    moto: str, tmp_path: Path, write_config, cli_runner
) -> None:
    client = s3(moto)
    client.create_bucket(Bucket="team-write")
    local = tmp_path / "local-results"
    aws = f"aws: {{bucket: team-write, s3_and_or_local_file_system: both, local_file_system_path: '{local}'}}\n"
    path = write_config(SMALL + aws + "dir_paths: {data_prefix: benchmarks}\n")
    result = cli_runner.invoke(cli, ["prepare", str(path)])
    assert result.exit_code == 0, result.output
    payload = "payloads/from-a-url/payload_en_1-1000.jsonl"
    assert (local / payload).is_file()
    assert f"benchmarks/{payload}" in keys(client, "team-write")
    assert "benchmarks/raw/prompts/benchmark=from-a-url/prompts.parquet" in keys(client, "team-write")


def test_a_lost_manifest_or_a_local_change_never_blocks_or_reverts(moto: str, tmp_path: Path) -> None:
    client = s3(moto)
    client.create_bucket(Bucket="results-bucket")
    local = tmp_path / "copy"
    part = local / "raw" / "requests" / "experiment=e" / "run_id=r" / "part-00000.parquet"
    run = local / "raw" / "runs" / "run_id=r" / "run.parquet"
    for path, body in ((part, b"rows"), (run, b"running")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    Mirror(local, S3Url("results-bucket", "d")).push()
    (local / ".fmb-sync.json").unlink()  # say a crash before the manifest was saved
    mirror = Mirror(local, S3Url("results-bucket", "d"))
    assert mirror.push() == 2  # its own part is recognised by its content, not taken for a clash
    run.write_bytes(b"finished")  # changed here, not pushed yet: a pull leaves it alone
    assert mirror.pull("raw") == 0 and run.read_bytes() == b"finished"
    assert mirror.push() == 1
    assert client.get_object(Bucket="results-bucket", Key="d/raw/runs/run_id=r/run.parquet")["Body"].read() == (
        b"finished"
    )


def test_a_payload_file_removed_here_is_removed_from_the_bucket(moto: str, tmp_path: Path) -> None:
    client = s3(moto)
    client.create_bucket(Bucket="results-bucket")
    payload = tmp_path / "copy" / "payloads" / "b" / "payload_en_1-500.jsonl"
    payload.parent.mkdir(parents=True)
    payload.write_text("{}\n")
    mirror = Mirror(tmp_path / "copy", S3Url("results-bucket", "d"))
    mirror.push()
    payload.unlink()
    mirror.push()
    assert keys(client, "results-bucket") == []
    assert mirror.pull("payloads") == 0 and not payload.exists()


def test_a_password_in_a_config_url_is_never_shown_or_written(moto: str, http_files, tmp_path, cli_runner) -> None:
    base, files = http_files
    files["/team/bad.yml"] = b"general: [unclosed\n"
    url = base.replace("http://", "http://alice:S3cretPw@") + "/team/bad.yml"
    result = cli_runner.invoke(cli, ["config", "check", url])
    assert result.exit_code == 1
    assert "S3cretPw" not in result.output and "alice" not in result.output
    assert f"{base}/team/bad.yml: line" in result.output  # named by its URL, not by the cached copy
    assert not [p for p in (tmp_path / "cache").rglob("*") if "S3cretPw" in str(p)]


def test_an_unknown_aws_profile_is_one_clear_error(moto: str, monkeypatch, cli_runner) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    result = cli_runner.invoke(cli, ["build", "--results", "s3://any-bucket/data"])
    assert result.exit_code == 1
    assert "no-such-profile" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_two_shards_on_two_hosts_share_one_bucket_and_a_third_host_builds_the_run(
    moto: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_runner
) -> None:
    """Each host works on its own cache; the parts meet in the bucket, none replaced, and the marts union them."""
    import duckdb

    from fmb.collector.mock.process import mock_server
    from tests.test_collect import make_config

    client = s3(moto)
    client.create_bucket(Bucket="shared-results")
    where = "s3://shared-results/bench"
    with mock_server(ttft_ms=3, itl_ms=1, output_tokens=6) as url:
        config = make_config(tmp_path, url, concurrency=(2, 4), rounds=2, prompts=4, warmup=2)
        monkeypatch.setenv("FMB_CACHE_DIR", str(tmp_path / "host-1"))
        prepared = cli_runner.invoke(cli, ["prepare", str(config), "--results", where])
        assert prepared.exit_code == 0, prepared.output
        for host, shard in (("host-1", "1/2"), ("host-2", "2/2")):
            monkeypatch.setenv("FMB_CACHE_DIR", str(tmp_path / host))
            args = ["collect", str(config), "--results", where, "--quiet", "--run-id", "split", "--shard", shard]
            result = cli_runner.invoke(cli, args)
            assert result.exit_code == 0, result.output
    parts = [k for k in keys(client, "shared-results", "bench/raw/requests/") if k.endswith(".parquet")]
    assert {k.rsplit("/", 1)[1].split("-0")[0] for k in parts} == {"part-shard-1-of-2", "part-shard-2-of-2"}

    monkeypatch.setenv("FMB_CACHE_DIR", str(tmp_path / "host-3"))
    built = cli_runner.invoke(cli, ["build", "--results", where])
    assert built.exit_code == 0, built.output
    warehouse = tmp_path / "host-3" / "results" / "shared-results" / "bench" / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        runs = con.execute(
            "select run_status, shard_count, collector_count, count_missing_requests from runs"
        ).fetchall()
        measured = con.execute("select sum(count_requests) from cells").fetchone()
    assert runs == [("completed", 2, 2, 0)]
    assert measured == (2 * (2 + 4),)  # rounds x the concurrency levels: every request, once
