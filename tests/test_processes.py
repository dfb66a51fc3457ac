"""Several collector processes for one run (`fmb collect --processes N`), against the mock server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from fmb.collector.mock.process import mock_server
from fmb.collector.plan import load_levels, make_plan
from fmb.config.loader import load_config
from fmb.paths import ResultsLayout
from fmb.warehouse.build import warehouse_path
from tests.rawdata import query
from tests.test_collect import make_config, request_rows, run_cli


def most_in_flight(rows: list[dict]) -> int:
    """The most requests in flight at once (an end at the same instant as a start frees its slot first)."""
    events = sorted([(r["ended_at"], -1) for r in rows] + [(r["started_at"], 1) for r in rows])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


@pytest.mark.slow
def test_two_processes_send_each_request_once_and_start_every_cell_together(tmp_path: Path, cli_runner) -> None:
    results = tmp_path / "results"
    with mock_server(ttft_ms=40, itl_ms=5, output_tokens=32) as url:
        config = make_config(tmp_path, url, concurrency=(1, 4, 8), warmup=8)
        assert run_cli(cli_runner, "prepare", str(config), "--results", str(results)).exit_code == 0
        collected = run_cli(cli_runner, "collect", str(config), "--results", str(results), "--processes", "2")
        assert collected.exit_code == 0, collected.output
        built = run_cli(cli_runner, "build", "--results", str(results))
        assert built.exit_code == 0, built.output
    # The summary adds the processes' requests up per cell.
    assert "c=8: 64 requests, 0 errors" in collected.output and "c=1: 8 requests, 0 errors" in collected.output
    assert "(2 collector processes): completed" in collected.output
    rows = request_rows(results)
    assert {r["shard_count"] for r in rows} == {2} and len({r["run_id"] for r in rows}) == 1
    by_cell: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        by_cell[r["concurrency"]].append(r)
    for c, cell in by_cell.items():
        measured = sorted(r["request_index"] for r in cell if not r["is_warmup"])
        assert measured == list(range(8, 8 + 8 * c))  # each planned request once, after the 8 warm-ups
        for r in cell:  # process I sends request k from the slots w with w mod 2 == I - 1, k's slot among them
            assert r["worker"] % 2 == r["shard"] - 1 and (r["request_index"] % c) % 2 == r["shard"] - 1
        warm = [r for r in cell if r["is_warmup"]]
        assert len(warm) == 8 and most_in_flight(warm) <= c
        assert most_in_flight([r for r in cell if not r["is_warmup"]]) == c  # together they keep c in flight
    assert {r["shard"] for r in by_cell[1]} == {1}  # one slot: the second process has nothing to send
    for c in (4, 8):
        firsts = [min(r["started_at"] for r in by_cell[c] if r["shard"] == s) for s in (1, 2)]
        assert abs((firsts[0] - firsts[1]).total_seconds()) < 0.05  # the cell started at once in both

    wh = warehouse_path(results)
    (run,) = query(wh, "select run_status, shard_count, count_missing_shards, count_warmup_requests from runs")
    assert run == {"run_status": "completed", "shard_count": 2, "count_missing_shards": 0, "count_warmup_requests": 24}
    cells = {c["concurrency"]: c for c in query(wh, "select * from cells")}
    assert {c: cells[c]["count_requests"] for c in cells} == {1: 8, 4: 32, 8: 64}
    # One request takes 40 + 31 * 5 ms at the mock: c requests in flight give about c / 0.2 per second.
    assert cells[8]["requests_per_s"] == pytest.approx(8 / 0.2, rel=0.35)
    # Each process samples its own CPU and event loop; only the first would sample the host.
    pids = ds.dataset(results / "raw" / "client_metrics", format="parquet", partitioning="hive").to_table()
    assert len(set(pids.column("pid").to_pylist())) == 2


def test_processes_keep_one_open_loop_schedule(tmp_path: Path, cli_runner) -> None:
    extra = """
    - name: open
      api: openai-chat
      endpoint_url: {url}/v1
      instance_type: local.cpu
      stream: true
      inference_spec: {{parameter_set: chat}}
      payload_files: [payload_en_40-60.jsonl]
      concurrency_levels: [1]
      load: {{mode: poisson, rates: [40], requests: 80, max_in_flight: 16, seed: 11}}
    """
    results = tmp_path / "results"
    with mock_server(ttft_ms=20, itl_ms=2, output_tokens=16) as url:
        config = make_config(tmp_path, url, concurrency=(2,), rounds=2, extra=extra.format(url=url))
        assert run_cli(cli_runner, "prepare", str(config), "--results", str(results)).exit_code == 0
        collected = run_cli(
            cli_runner, "collect", str(config), "--results", str(results), "--processes", "2", "--experiment", "open"
        )
        assert collected.exit_code == 0, collected.output
    loaded = load_config(str(config))
    loaded = replace(loaded, experiments=load_levels(loaded.experiments))
    (cell,) = make_plan(loaded, ResultsLayout(results), ("open",)).cells["open@40rps"]
    assert cell.schedule is not None
    rows = sorted(request_rows(results), key=lambda r: r["request_index"])
    assert [r["request_index"] for r in rows] == list(range(80)) and {r["shard"] for r in rows} == {1, 2}
    first = rows[0]["scheduled_at"]
    due = [(r["scheduled_at"] - first).total_seconds() for r in rows]
    # Both processes keep the one schedule, as one collector would (to the wall clock's microseconds).
    assert due == pytest.approx([t - cell.schedule.offsets[0] for t in cell.schedule.offsets], abs=1e-3)
    assert all(r["send_lateness_ms"] >= 0 for r in rows)
    assert max(r["worker"] for r in rows) < 16  # the cap of 16 in flight is split between them


def test_processes_refuse_shards_and_sweeps_and_report_an_unreachable_endpoint(tmp_path: Path, cli_runner) -> None:
    results = tmp_path / "results"
    with mock_server(ttft_ms=5, itl_ms=1, output_tokens=4) as url:
        config = make_config(tmp_path, url, concurrency=(2,), rounds=1)
        assert run_cli(cli_runner, "prepare", str(config), "--results", str(results)).exit_code == 0
    both = run_cli(
        cli_runner, "collect", str(config), "--results", str(results), "--processes", "2", "--shard", "1/2",
        "--run-id", "r1",
    )  # fmt: skip
    assert both.exit_code == 2 and "give one of them" in both.output
    bad = run_cli(cli_runner, "collect", str(config), "--results", str(results), "--processes", "0")
    assert bad.exit_code == 2 and "'0' is not a number of processes" in bad.output

    # The mock has stopped: both processes fail to reach it, and the user gets the reason, not a traceback.
    gone = run_cli(cli_runner, "collect", str(config), "--results", str(results), "--processes", "2")
    assert gone.exit_code == 1 and "Traceback" not in gone.output
    assert "collected by 2 processes" in gone.output and "mock-endpoint" in gone.output

    sweep = config.read_text().replace(
        "  concurrency_levels: [2]\n", "  concurrency_levels: [1, 2]\n  load: {mode: closed, stop_past_knee: true}\n"
    )
    config.write_text(sweep)
    refused = run_cli(cli_runner, "collect", str(config), "--results", str(results), "--processes", "2")
    assert refused.exit_code == 1 and "sweeps (load.stop_past_knee)" in refused.output


@pytest.mark.slow
def test_ctrl_c_stops_every_process_and_resume_sends_the_rest(tmp_path: Path, cli_runner) -> None:
    results = tmp_path / "results"
    with mock_server(ttft_ms=40, itl_ms=5, output_tokens=32) as url:
        config = make_config(tmp_path, url, concurrency=(4, 8), rounds=30)
        assert run_cli(cli_runner, "prepare", str(config), "--results", str(results)).exit_code == 0
        command = [sys.executable, "-m", "fmb", "collect", str(config), "--results", str(results), "--quiet"]
        # Its own process group, as a terminal's foreground job: Ctrl-C reaches the parent and both processes.
        job = subprocess.Popen(
            [*command, "--processes", "2"], start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not list((results / "raw" / "requests").rglob("*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # some requests of the first cell are done, most are not
        os.killpg(job.pid, signal.SIGINT)
        out, _ = job.communicate(timeout=120)
        assert job.returncode == 130, out
        assert ": interrupted" in out and "Traceback" not in out
        run_id = out.split("--resume ")[1].split()[0]
        assert f"--resume {run_id} --processes 2" in out
        again = subprocess.run(
            [*command, "--processes", "2", "--resume", run_id], capture_output=True, text=True, timeout=300
        )
        assert again.returncode == 0, again.stdout + again.stderr
    rows = request_rows(results)
    measured = {(r["concurrency"], r["request_index"]) for r in rows if r["status"] == "ok" and not r["is_warmup"]}
    assert len(measured) == 30 * 4 + 30 * 8  # nothing lost, nothing sent twice that was measured
    assert {r["status"] for r in rows} <= {"ok", "cancelled"} and {r["run_id"] for r in rows} == {run_id}
