"""A collector killed with SIGKILL loses no finished request; its run is found abandoned,
its cut-short cells are flagged, and `fmb collect --resume` sends exactly what is missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from fmb.collector.journal import SEGMENT_GLOB
from fmb.collector.mock.process import mock_server
from fmb.warehouse.build import warehouse_path
from tests.rawdata import query
from tests.test_collect import make_config, request_rows, run_cli, run_rows

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

CONCURRENCY = (1, 4)
ROUNDS = 150  # 150 + 600 requests planned: the kill lands long before the end


def mock_counts(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
        return json.loads(answer.read())


def start_and_kill(tmp_path: Path, url: str, results: Path) -> tuple[Path, dict]:
    """Prepare, start `fmb collect` in a child, SIGKILL it mid-run; the mock's counts at the kill."""
    config = make_config(tmp_path, url, concurrency=CONCURRENCY, rounds=ROUNDS, prompts=8)
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    subprocess.run(
        [sys.executable, "-m", "fmb", "prepare", str(config), "--results", str(results)],
        check=True,
        capture_output=True,
        env=env,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "fmb", "collect", str(config), "--results", str(results), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and mock_counts(url)["completed"] < 200:  # well into the c=4 cell
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(0.3)  # requests the server was answering at the kill end on its side
    return config, mock_counts(url)


def test_kill_9_loses_no_finished_request(tmp_path: Path) -> None:
    results = tmp_path / "results"
    runner = CliRunner()
    with mock_server(ttft_ms=4, itl_ms=1, output_tokens=8) as url:
        _, at_kill = start_and_kill(tmp_path, url, results)
    (run,) = run_rows(results)
    assert run["status"] == "running"  # as the killed process left it
    assert list(results.rglob(SEGMENT_GLOB)), "the rows since the last part are in the journal"

    built = run_cli(runner, "build", "--results", str(results))
    assert built.exit_code == 0, built.output
    assert f"Run {run['run_id']} was abandoned" in built.output
    assert not list(results.rglob(SEGMENT_GLOB))
    (run,) = run_rows(results)
    assert run["status"] == "abandoned" and run["ended_at"] is not None
    assert "--resume" in run["status_message"]

    rows = request_rows(results)
    ok = [r for r in rows if r["status"] == "ok"]
    # Every response the server finished is a row, except the at most `concurrency` that were
    # still on their way to the client when it died.
    assert at_kill["completed"] - max(CONCURRENCY) <= len(ok) <= at_kill["completed"]
    assert len({(r["concurrency"], r["request_index"]) for r in rows}) == len(rows)
    assert all(r["completion_tokens_client"] for r in ok)  # finished from the journal with the run's tokenizer

    (summary,) = query(warehouse_path(results), "select * from runs")
    assert summary["run_status"] == "abandoned"
    assert summary["count_planned_requests"] == ROUNDS * sum(CONCURRENCY)
    assert summary["count_missing_requests"] == ROUNDS * sum(CONCURRENCY) - len(rows)
    assert summary["count_cut_short_cells"] == 1
    (cut,) = query(warehouse_path(results), "select * from cells where is_cut_short")
    assert cut["concurrency"] == 4 and cut["count_missing_requests"] > 0
    assert not query(warehouse_path(results), "select * from recommendations where is_best_overall and concurrency = 4")

    reported = run_cli(runner, "report", "--results", str(results))
    assert reported.exit_code == 0, reported.output
    report = next((results / "reports").rglob("report.md")).read_text(encoding="utf-8")
    assert "**This run did not complete** (abandoned: the collector process ended" in report
    assert "**1 cell was cut short**" in report and f"--resume {run['run_id']}" in report
    assert " (cut short) |" in report  # the cell's row in the all-cells table


def test_resume_sends_exactly_the_missing_requests(tmp_path: Path) -> None:
    results = tmp_path / "results"
    runner = CliRunner()
    with mock_server(ttft_ms=4, itl_ms=1, output_tokens=8) as url:
        config, _ = start_and_kill(tmp_path, url, results)
        before = request_rows(results)  # only the parts: the journal is not read yet
        sent_before = mock_counts(url)["requests"]
        resumed = run_cli(
            runner,
            "collect",
            str(config),
            "--results",
            str(results),
            "--quiet",
            "--resume",
            run_rows(results)[0]["run_id"],
        )
        assert resumed.exit_code == 0, resumed.output
        sent = mock_counts(url)["requests"] - sent_before
    assert "was abandoned" in resumed.output  # the journal was recovered first
    rows = request_rows(results)
    run_id = rows[0]["run_id"]
    missing = ROUNDS * sum(CONCURRENCY) - len([r for r in rows if r["session"] == 0 and r["status"] != "cancelled"])
    assert sent == missing == len([r for r in rows if r["session"] == 1]) > 0
    assert f"Resuming run {run_id}: {missing} missing request(s)" in resumed.output
    assert len(before) <= len(rows) - missing
    for c in CONCURRENCY:
        indices = sorted(r["request_index"] for r in rows if r["concurrency"] == c)
        assert indices == list(range(ROUNDS * c)), f"c={c}: every planned request exactly once"
    (run,) = run_rows(results)
    assert run["status"] == "completed"

    built = run_cli(runner, "build", "--results", str(results))
    assert built.exit_code == 0, built.output
    cells = query(warehouse_path(results), "select * from cells order by concurrency")
    assert [c["count_requests"] for c in cells] == [ROUNDS * c for c in CONCURRENCY]
    assert not any(c["is_cut_short"] for c in cells)
    assert cells[1]["count_collection_sessions"] == 2
    (summary,) = query(warehouse_path(results), "select * from runs")
    assert summary["count_missing_requests"] == 0 and summary["run_status"] == "completed"

    again = run_cli(runner, "collect", str(config), "--results", str(results), "--quiet", "--resume", run_id)
    assert again.exit_code == 0 and "nothing to resume" in again.output


def test_resume_refuses_another_config_or_an_unknown_run(tmp_path: Path) -> None:
    results = tmp_path / "results"
    runner = CliRunner()
    with mock_server(ttft_ms=2, itl_ms=1, output_tokens=4) as url:
        config = make_config(tmp_path, url, concurrency=(1,), rounds=2)
        assert run_cli(runner, "prepare", str(config), "--results", str(results)).exit_code == 0
        assert run_cli(runner, "collect", str(config), "--results", str(results), "--quiet").exit_code == 0
        run_id = run_rows(results)[0]["run_id"]
        unknown = run_cli(runner, "collect", str(config), "--results", str(results), "--resume", "nope")
        assert unknown.exit_code == 1 and "no such run" in unknown.output
        other = make_config(tmp_path, url, concurrency=(1,), rounds=3)
        changed = run_cli(runner, "collect", str(other), "--results", str(results), "--resume", run_id)
        assert changed.exit_code == 1 and "another config" in changed.output
        assert "Traceback" not in unknown.output + changed.output
