"""`fmb build` on hostile ground: odd results paths, unreadable raw entries, two builds at once.

Each case fails before dbt starts with one FmbError that names the path, or builds the
full warehouse; the command-line cases run `python -m fmb build` in a second process.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.dataset as pads
import pytest

from fmb.errors import FmbError
from fmb.warehouse.build import build, warehouse_path
from fmb.warehouse.lock import lock_path
from tests.rawdata import query, write_run
from tests.test_warehouse import MARTS

pytestmark = pytest.mark.slow  # servers in subprocesses, dbt builds or a real model

ROOT = Path(__file__).resolve().parent.parent


def make_results(parent: Path, rows_per_cell: int = 12) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    results = parent / "results"
    write_run(parent, results, 1, datetime(2026, 1, 1, tzinfo=UTC), rows_per_cell=rows_per_cell)
    return results


def a_partition(results: Path) -> Path:
    """One experiment=/run_id= folder of raw/requests."""
    return sorted((results / "raw" / "requests").glob("*/*"))[0]


def measured_requests(results: Path) -> int:
    rows = (
        pads.dataset(results / "raw" / "requests", format="parquet", partitioning="hive")
        .to_table(columns=["is_warmup", "status"])
        .to_pylist()
    )
    return sum(1 for r in rows if not r["is_warmup"] and r["status"] != "cancelled")


def fmb_build(results: Path, *args: str, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fmb", "build", "--results", str(results), *args],
        cwd=results.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        **popen,
    )


# Paths -------------------------------------------------------------------------------


def test_a_results_path_with_a_quote_spaces_and_glob_characters_builds(tmp_path: Path) -> None:
    results = make_results(tmp_path / "it's [a] *{b} 100%")
    (a_partition(results) / ".part-0123abcd.tmp").write_bytes(b"half a part file")  # a writer at work
    build(results)
    for name in MARTS:
        assert (results / "marts" / name / f"{name}.parquet").is_file()
    cells = query(warehouse_path(results), "select count(*) as n, sum(count_requests) as requests from cells")
    assert cells == [{"n": 6, "requests": measured_requests(results)}]


@pytest.mark.parametrize("character", ["=", "?", "#", "\\"])
def test_path_characters_duckdb_cannot_take_are_refused_before_dbt(tmp_path: Path, character: str) -> None:
    results = make_results(tmp_path / f"a{character}b", rows_per_cell=3)
    with pytest.raises(FmbError, match=re.escape(f"has a {character} in its path")) as caught:
        build(results)
    assert ("link with a plain name" in (caught.value.hint or "")) is (character != "?")
    assert not (results / "dbt").exists()


def test_a_link_with_a_plain_name_is_the_way_round_a_refused_path(tmp_path: Path) -> None:
    results = make_results(tmp_path / "run_id=x#y")
    link = tmp_path / "plain"
    link.symlink_to(results)
    build(link)
    runs = query(warehouse_path(results), "select run_id from runs")
    assert runs == [{"run_id": "run-1"}]  # not "x#y", read from the folder name
    assert (results / "marts" / "cells" / "cells.parquet").is_file()


def test_a_link_does_not_hide_a_question_mark_from_duckdb(tmp_path: Path) -> None:
    results = make_results(tmp_path / "a?b", rows_per_cell=3)
    link = tmp_path / "plain"
    link.symlink_to(results)
    with pytest.raises(FmbError, match=re.escape(f"the results folder {results} has a ? in its path")):
        build(link)


# Unreadable raw entries ----------------------------------------------------------------


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return make_results(tmp_path, rows_per_cell=3)


def refused(results: Path, path: Path, reason: str) -> None:
    with pytest.raises(FmbError) as caught:
        build(results, wait_s=0)
    assert f"cannot read the raw table entry {path}: " in caught.value.message
    assert reason in caught.value.message
    assert "chmod" in (caught.value.hint or "")
    assert not (results / "dbt").exists()


def test_a_broken_link_in_place_of_a_part_file(results: Path) -> None:
    part = a_partition(results) / "part-00001.parquet"
    part.symlink_to(part.parent / "gone.parquet")
    refused(results, part, "symbolic link to")


def test_a_folder_in_place_of_a_part_file(results: Path) -> None:
    part = a_partition(results) / "part-00001.parquet"
    part.mkdir()
    refused(results, part, "a folder where a Parquet file was expected")


def test_a_file_in_place_of_a_partition_folder(results: Path) -> None:
    partition = results / "raw" / "requests" / "experiment=ghost"
    partition.write_bytes(b"")
    refused(results, partition, "a file where a partition folder")


def test_a_link_that_loops_back(results: Path) -> None:
    loop = a_partition(results).parent / "run_id=loop"
    loop.symlink_to(loop.parent)
    refused(results, loop, "a loop")


def test_a_link_to_itself(results: Path) -> None:
    own = a_partition(results) / "part-00002.parquet"
    own.symlink_to(own)
    refused(results, own, "Too many levels of symbolic links")


def test_a_pipe_in_place_of_a_part_file_is_refused_without_blocking(results: Path) -> None:
    pipe = a_partition(results) / "part-00003.parquet"
    os.mkfifo(pipe)
    refused(results, pipe, "not a regular file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads through chmod 000; the cases above fail for root too")
@pytest.mark.parametrize("target", ["partition", "part", "runs"])
def test_permissions_that_hide_rows(results: Path, target: str) -> None:
    path = {
        "partition": a_partition(results),
        "part": sorted(a_partition(results).glob("*.parquet"))[0],
        "runs": sorted((results / "raw" / "runs").glob("*"))[0],  # would read as "no run" if skipped
    }[target]
    path.chmod(0)
    try:
        refused(results, path, "cannot be listed" if path.is_dir() else "cannot be read")
    finally:
        path.chmod(0o755)


def test_the_command_names_the_entry_without_a_traceback(results: Path) -> None:
    part = a_partition(results) / "part-00001.parquet"
    part.symlink_to("nowhere")
    out, err = fmb_build(results).communicate(timeout=120)
    assert "Traceback" not in err + out
    assert str(part) in err.replace("\n", "")


# Two builds, and a warehouse held by another program -------------------------------------


@pytest.fixture
def held_lock(results: Path):
    with open(lock_path(results), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        yield held


def test_a_second_build_waits_then_fails_with_one_clear_line(results: Path, held_lock) -> None:
    proc = fmb_build(results, "--wait", "1")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert f"another fmb build is running on {results}; waiting up to 1 s" in err
    assert f"Error: another fmb build is still running on {results} after waiting 1 s." in err
    assert "Traceback" not in err + out
    assert not (results / "dbt").exists()


def test_a_second_build_goes_ahead_when_the_first_ends(results: Path, held_lock) -> None:
    proc = fmb_build(results, "--wait", "120")
    assert proc.stderr is not None
    for line in proc.stderr:
        if "waiting up to 120 s" in line:
            break
    else:
        pytest.fail(f"no waiting message; the build ended with {proc.wait()}")
    assert not (results / "dbt").exists()
    held_lock.close()  # the first build ends
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "dbt build:" in out
    assert (results / "marts" / "cells" / "cells.parquet").is_file()


def test_a_warehouse_open_in_another_program_is_one_clear_line(results: Path) -> None:
    other = duckdb.connect(str(warehouse_path(results)))  # a DuckDB CLI or a BI tool, say
    try:
        proc = fmb_build(results)
        out, err = proc.communicate(timeout=120)
    finally:
        other.close()
    assert proc.returncode == 1
    flat = err.replace("\n", "")
    assert f"the warehouse {warehouse_path(results)} is open in another program" in flat
    assert f"PID {os.getpid()}" in flat
    assert "Close that program" in flat
    assert "Traceback" not in err + out
    assert not (results / "dbt").exists()
