"""Sharded collection against the mock endpoint: N collectors, one run, the marts of one collector."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from fmb.collector.mock.process import mock_server
from fmb.collector.recovery import recover_abandoned
from fmb.collector.shard import Shard
from fmb.paths import ResultsLayout
from fmb.warehouse.build import warehouse_path
from tests.rawdata import query
from tests.test_collect import make_config, run_cli
from tests.test_crash_recovery import mock_counts

pytestmark = pytest.mark.slow  # a mock server in a subprocess and dbt builds

CONCURRENCY = (1, 3, 4)
ROUNDS = 2
WARMUP = 3
CELL_KEY = ("experiment", "payload_file", "concurrency")


def raw_rows(results: Path, table: str, run_id: str) -> list[dict]:
    dataset = ds.dataset(results / "raw" / table, format="parquet", partitioning="hive")
    return [r for r in dataset.to_table().to_pylist() if r["run_id"] == run_id]


def request_set(rows: list[dict]) -> list[tuple]:
    """What was asked of the server: the cell, the request, its prompt and whether it was a warm-up."""
    return sorted((*(r[k] for k in CELL_KEY), r["request_index"], r["prompt_id"], r["is_warmup"]) for r in rows)


def collect(runner: CliRunner, config: Path, results: Path, *args: str):
    return run_cli(runner, "collect", str(config), "--results", str(results), "--quiet", *args)


def shard_process(config: Path, results: Path, run_id: str, shard: str) -> subprocess.Popen:
    args = ["collect", str(config), "--results", str(results), "--quiet", "--run-id", run_id, "--shard", shard]
    return subprocess.Popen(
        [sys.executable, "-m", "fmb", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def strip_shard_columns(results: Path, run_id: str) -> None:
    """Make a run's raw files look written before fmb recorded shards."""
    for table in ("requests", "runs"):
        for path in (results / "raw" / table).rglob("*.parquet"):
            if f"run_id={run_id}" in str(path):
                pq.write_table(pq.read_table(path).drop_columns(["shard", "shard_count"]), path)


def test_two_shards_at_once_give_the_marts_of_one_collector(tmp_path: Path) -> None:
    results = tmp_path / "results"
    runner = CliRunner()
    with mock_server(ttft_ms=3, itl_ms=1, output_tokens=6) as url:
        config = make_config(tmp_path, url, concurrency=CONCURRENCY, rounds=ROUNDS, prompts=5, warmup=WARMUP)
        assert run_cli(runner, "prepare", str(config), "--results", str(results)).exit_code == 0
        whole = collect(runner, config, results, "--run-id", "whole")
        assert whole.exit_code == 0, whole.output
        shards = [shard_process(config, results, "sharded", s) for s in ("1/2", "2/2")]  # at the same time
        for proc in shards:
            out, _ = proc.communicate(timeout=300)
            assert proc.returncode == 0, out

    one, split = raw_rows(results, "requests", "whole"), raw_rows(results, "requests", "sharded")
    assert request_set(split) == request_set(one)  # the same requests, each once
    assert len(request_set(split)) == len(split) == WARMUP * len(CONCURRENCY) + ROUNDS * sum(CONCURRENCY)
    for row in split:
        shard = Shard(row["shard"], row["shard_count"])
        assert row["shard_count"] == 2 and shard.owns(row["concurrency"], row["request_index"])
        assert row["worker"] in shard.slots(row["concurrency"])  # the slot that sent it, of its shard's
    assert {(r["shard"], r["shard_count"]) for r in one} == {(1, 1)}
    parts = sorted(p.name for p in (results / "raw" / "requests").rglob("run_id=sharded/*.parquet"))
    assert parts and all(p.startswith(("part-shard-1-of-2-", "part-shard-2-of-2-")) for p in parts)
    assert sorted(p.name for p in (results / "raw" / "runs" / "run_id=sharded").glob("*.parquet")) == [
        "run-shard-1-of-2.parquet",
        "run-shard-2-of-2.parquet",
    ]
    assert {r["status"] for r in raw_rows(results, "runs", "sharded")} == {"completed"}

    strip_shard_columns(results, "whole")  # old files still build, as a run on one collector
    built = run_cli(runner, "build", "--results", str(results))
    assert built.exit_code == 0, built.output
    warehouse = warehouse_path(results)
    compared = (
        "concurrency, count_planned_requests, count_requests, count_successful_requests, count_failed_requests, "
        "count_missing_requests, is_cut_short, prompt_tokens_total, completion_tokens_total, token_count_source"
    )
    cells = {
        run: query(warehouse, f"select {compared} from cells where run_id = ? order by concurrency", [run])
        for run in ("whole", "sharded")
    }
    assert cells["sharded"] == cells["whole"]
    assert [c["count_requests"] for c in cells["whole"]] == [ROUNDS * c for c in CONCURRENCY]

    runs = {r["run_id"]: r for r in query(warehouse, "select * from runs")}
    same = [
        "run_status",
        "count_planned_cells",
        "count_planned_requests",
        "count_measured_requests",
        "count_requests_sent",
        "count_warmup_requests",
        "count_measured_failed_requests",
        "count_missing_requests",
        "count_cut_short_cells",
    ]
    assert {k: runs["sharded"][k] for k in same} == {k: runs["whole"][k] for k in same}
    assert runs["sharded"]["run_status"] == "completed"
    counts = ("shard_count", "collector_count", "host_count", "count_missing_shards")
    assert [runs["sharded"][k] for k in counts] == [2, 2, 1, 0]
    assert [runs["whole"][k] for k in counts] == [1, 1, 1, 0]
    assert runs["sharded"]["started_at"] < runs["sharded"]["ended_at"]

    experiments = query(warehouse, "select run_id, collector_count, shard_count from experiment_runs order by run_id")
    assert [(e["run_id"], e["collector_count"], e["shard_count"]) for e in experiments] == [
        ("sharded", 2, 2),
        ("whole", 1, 1),
    ]
    by_shard = query(
        warehouse, "select shard, count(*) as n from requests where run_id = 'sharded' group by shard order by shard"
    )
    # Shard 1 has slot 0 of c=1, slots 0 and 2 of c=3, slots 0 and 2 of c=4; shard 2 the rest.
    assert [(r["shard"], r["n"]) for r in by_shard] == [(1, ROUNDS * 5), (2, ROUNDS * 3)]


def test_a_missing_shard_marks_the_run_incomplete_and_keeps_the_others_rows(tmp_path: Path) -> None:
    results = tmp_path / "results"
    runner = CliRunner()
    with mock_server(ttft_ms=3, itl_ms=1, output_tokens=6) as url:
        config = make_config(tmp_path, url, concurrency=CONCURRENCY, rounds=ROUNDS, prompts=5, warmup=WARMUP)
        assert run_cli(runner, "prepare", str(config), "--results", str(results)).exit_code == 0
        second = collect(runner, config, results, "--run-id", "half", "--shard", "2/2")
        assert second.exit_code == 0, second.output
        assert "run half (shard 2/2): completed" in second.output

        refusals = {
            ("--run-id", "half", "--shard", "2/2"): "this shard of the run was already started",
            ("--run-id", "half", "--shard", "1/3"): "run half already exists (collected in 2 shard(s))",
            ("--run-id", "half"): "run half already exists",
            ("--resume", "half", "--shard", "1/2"): "this shard of the run never started",
            ("--resume", "half"): "the run was collected in 2 shards; name the shard",
        }
        for args, message in refusals.items():
            refused = collect(runner, config, results, *args)
            assert refused.exit_code == 1 and message in refused.output, (args, refused.output)
            assert "Traceback" not in refused.output

        built = run_cli(runner, "build", "--results", str(results))
        assert built.exit_code == 0, built.output
        warehouse = warehouse_path(results)
        (run,) = query(warehouse, "select * from runs")
        shard_two = Shard(2, 2)
        planned = sum(len(shard_two.indices(c, range(WARMUP, WARMUP + ROUNDS * c))) for c in CONCURRENCY)
        assert run["run_status"] == "incomplete" and "only 1 of the 2 planned shards" in run["run_status_message"]
        assert [run[k] for k in ("shard_count", "collector_count", "count_missing_shards")] == [2, 1, 1]
        assert run["count_measured_requests"] == planned == ROUNDS * 3
        assert run["count_missing_requests"] == ROUNDS * sum(CONCURRENCY) - planned
        kept = query(warehouse, "select distinct shard from requests where run_id = 'half'")
        assert kept == [{"shard": 2}]
        assert query(warehouse, "select count(*) as n from cell_spreads") == [{"n": 0}]  # not a completed run

        # Shard 2 cut short: a part of its rows gone, its row says interrupted. Its resume sends
        # exactly those requests, all its own.
        part = sorted((results / "raw" / "requests").rglob("run_id=half/part-shard-2-of-2-*.parquet"))[-1]
        lost = {(r["concurrency"], r["request_index"]) for r in pq.read_table(part).to_pylist()}
        part.unlink()
        run_file = results / "raw" / "runs" / "run_id=half" / "run-shard-2-of-2.parquet"
        row = pq.read_table(run_file).to_pylist()[0] | {"status": "interrupted"}
        pq.write_table(pa.Table.from_pylist([row], schema=pq.read_schema(run_file)), run_file)
        resumed = collect(runner, config, results, "--resume", "half", "--shard", "2/2")
        assert resumed.exit_code == 0, resumed.output
        assert f"Resuming run half: {len([k for k in lost if k[1] >= WARMUP])} missing request(s)" in resumed.output
        again = {
            (r["concurrency"], r["request_index"])
            for r in raw_rows(results, "requests", "half")
            if r["session"] == 1 and not r["is_warmup"]
        }
        assert again == {k for k in lost if k[1] >= WARMUP}

        first = collect(runner, config, results, "--run-id", "half", "--shard", "1/2")  # the missing shard, late
        assert first.exit_code == 0, first.output

    assert run_cli(runner, "build", "--results", str(results)).exit_code == 0
    (run,) = query(warehouse_path(results), "select * from runs")
    assert run["run_status"] == "completed" and run["count_missing_requests"] == 0
    assert [run[k] for k in ("shard_count", "collector_count", "count_missing_shards")] == [2, 2, 0]


def test_a_killed_shard_is_recovered_while_the_other_collects_on(tmp_path: Path) -> None:
    results = tmp_path / "results"
    runner = CliRunner()
    concurrency, rounds = 4, 400  # 800 requests a shard, on two slots each: seconds of work
    with mock_server(ttft_ms=4, itl_ms=1, output_tokens=8) as url:
        config = make_config(tmp_path, url, concurrency=(concurrency,), rounds=rounds, prompts=8)
        assert run_cli(runner, "prepare", str(config), "--results", str(results)).exit_code == 0
        first, second = (shard_process(config, results, "killed", s) for s in ("1/2", "2/2"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and mock_counts(url)["completed"] < 300:
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)

        recovered = recover_abandoned(ResultsLayout(results))  # as the next fmb collect or build does
        assert second.poll() is None, "shard 2 ends seconds after the kill"
        folder = next((results / "raw" / "requests").glob("*/run_id=killed"))
        # Shard 2's rows since its cell began are in its journal: recovering shard 1 left them alone.
        assert list(folder.glob(".journal-shard-2-of-2-*.jsonl"))
        out, _ = second.communicate(timeout=300)
        assert second.returncode == 0, out
        assert [(r.run_id, r.rows > 0) for r in recovered] == [("killed", True)]
        assert not list(folder.glob(".journal-*"))

        runs = {Shard.of_row(r).index: r for r in raw_rows(results, "runs", "killed")}
        assert runs[1]["status"] == "abandoned" and "--resume killed --shard 1/2" in runs[1]["status_message"]
        assert runs[2]["status"] == "completed"
        rows = raw_rows(results, "requests", "killed")
        assert len({r["request_index"] for r in rows}) == len(rows)  # none twice
        two = Shard(2, 2)
        assert sorted(r["request_index"] for r in rows if r["shard"] == 2) == two.indices(
            concurrency, range(rounds * concurrency)
        )
        assert all(Shard(1, 2).owns(concurrency, r["request_index"]) for r in rows if r["shard"] == 1)

        built = run_cli(runner, "build", "--results", str(results))
        assert built.exit_code == 0, built.output
        (run,) = query(warehouse_path(results), "select * from runs")
        assert run["run_status"] == "abandoned" and run["collector_count"] == 2
        assert run["count_missing_requests"] == rounds * concurrency - len(rows) > 0

        resumed = collect(runner, config, results, "--resume", "killed", "--shard", "1/2")
        assert resumed.exit_code == 0, resumed.output

    assert run_cli(runner, "build", "--results", str(results)).exit_code == 0
    (run,) = query(warehouse_path(results), "select * from runs")
    assert run["run_status"] == "completed" and run["count_missing_requests"] == 0
    assert run["count_measured_requests"] == rounds * concurrency


def test_the_shards_of_a_run_must_plan_the_same_cells(tmp_path: Path) -> None:
    results = tmp_path / "results"
    runner = CliRunner()
    with mock_server(ttft_ms=1, itl_ms=1, output_tokens=2) as url:
        other = f"""
        - name: other-endpoint
          api: openai-chat
          endpoint_url: {url}/v1
          instance_type: local.cpu
          inference_spec: {{parameter_set: chat}}
          payload_files: [payload_en_40-60.jsonl]
          concurrency_levels: [2]
        """
        config = make_config(tmp_path, url, concurrency=(1, 2), rounds=1, prompts=2, extra=other)
        assert run_cli(runner, "prepare", str(config), "--results", str(results)).exit_code == 0
        only = ("--experiment", "mock-endpoint")
        first = collect(runner, config, results, "--run-id", "r", "--shard", "1/2", *only)
        assert first.exit_code == 0, first.output
        for args in [("--shard", "2/2"), ("--shard", "2/2", "--experiment", "other-endpoint")]:
            refused = collect(runner, config, results, "--run-id", "r", *args)
            assert refused.exit_code == 1 and "the cells planned now differ from the run's" in refused.output
        second = collect(runner, config, results, "--run-id", "r", "--shard", "2/2", *only)
        assert second.exit_code == 0, second.output
    rows = raw_rows(results, "requests", "r")
    assert {r["experiment"] for r in rows} == {"mock-endpoint"}
    assert sorted((r["concurrency"], r["request_index"]) for r in rows) == [(1, 0), (2, 0), (2, 1)]
