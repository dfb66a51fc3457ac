"""Runs whose collector died: found by their free lock, their journals put into Parquet.

A collecting process holds an exclusive ``flock`` on its run's ``.collector.lock`` for as
long as it runs; the operating system lets go of it however the process ends, SIGKILL
included. A run recorded as ``running`` whose lock anyone can take is therefore
abandoned: the next ``fmb collect`` or ``fmb build`` writes the rows left in its journal
segments into part files (skipping any that already reached a part) and records the run
as ``abandoned``, with the time of its last finished request as its end.

The collector of each shard of a run (`fmb collect --shard I/N`) has its own lock, run
row, parts and journal segments (named after the shard), so a dead shard is finished
while the others collect on.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from fmb.collector.journal import read_segment, segments
from fmb.collector.parquet_io import write_atomic
from fmb.collector.schemas import REQUESTS, RUNS
from fmb.collector.shard import WHOLE, Shard
from fmb.collector.writer import claim_part, with_completion_tokens
from fmb.paths import ResultsLayout
from fmb.prepare.tokens import TokenCounter, WordRule, load_counter

LOCK_NAME = ".collector.lock"
ROW_KEY = ("payload_file", "concurrency", "request_index", "session")


class RunLock:
    """The exclusive lock a collector holds on its run; its file says how to finish the run's rows."""

    def __init__(self, layout: ResultsLayout, run_id: str, shard: Shard = WHOLE) -> None:
        self.path = layout.run_table_dir("runs", run_id) / shard.file_name(".collector", ".lock")
        self._fd: int | None = None

    def acquire(self, state: dict[str, Any] | None = None) -> bool:
        """Take the lock without waiting; False when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        if state is not None:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(state).encode(), 0)
        self._fd = fd
        return True

    def state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor lets go of the flock
            self._fd = None


def run_path(layout: ResultsLayout, run_id: str, shard: Shard = WHOLE) -> Path:
    """The file of the run's row (a shard's own row in a sharded run)."""
    return layout.run_table_dir("runs", run_id) / shard.file_name("run", ".parquet")


def read_run(layout: ResultsLayout, run_id: str, shard: Shard = WHOLE) -> dict[str, Any] | None:
    path = run_path(layout, run_id, shard)
    if not path.is_file():
        return None
    rows = pq.read_table(path).to_pylist()
    return rows[0] if rows else None


def read_run_rows(layout: ResultsLayout, run_id: str) -> list[dict[str, Any]]:
    """Every row of the run: one, or one per shard that started."""
    rows = []
    for path in sorted(layout.run_table_dir("runs", run_id).glob("run*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def run_ids(layout: ResultsLayout) -> list[str]:
    from urllib.parse import unquote

    folder = layout.raw / "runs"
    return sorted(unquote(p.name.removeprefix("run_id=")) for p in folder.glob("run_id=*") if p.is_dir())


def _counter(state: dict[str, Any]) -> TokenCounter:
    tokenizer = state.get("tokenizer")
    if tokenizer and Path(tokenizer).is_file():
        return load_counter([("the run's tokenizer", Path(tokenizer))])[0]
    return WordRule()


def _keys_in_parts(directory: Path) -> set[tuple[Any, ...]]:
    parts = sorted(directory.glob("part-*.parquet"))
    if not parts:
        return set()
    table = ds.dataset(parts, format="parquet", schema=REQUESTS).to_table(columns=list(ROW_KEY))
    return set(zip(*(table.column(k).to_pylist() for k in ROW_KEY), strict=True))


def compact_journals(directory: Path, counter: TokenCounter, tag: str = "") -> list[dict[str, Any]]:
    """Write the rows of ``directory``'s journal segments that no part holds into one part; return them.

    ``tag`` limits it to a shard's segments and names the part after the shard."""
    found = segments(directory, tag)
    if not found:
        return []
    seen = _keys_in_parts(directory)
    rows = []
    for segment in found:
        for row in read_segment(segment):
            key = tuple(row.get(k) for k in ROW_KEY)
            if key not in seen:
                seen.add(key)
                rows.append(row)
    if rows:
        claim_part(directory, with_completion_tokens(pa.Table.from_pylist(rows, schema=REQUESTS), counter), tag)
    for segment in found:
        segment.unlink(missing_ok=True)
    return rows


@dataclass
class Recovered:
    run_id: str
    rows: int


def recover_abandoned(layout: ResultsLayout, only: str | None = None) -> list[Recovered]:
    """Finish every run (or only run ``only``) recorded as running whose collector is gone.

    Each shard of a sharded run is finished on its own: a dead shard's rows while the others run on."""
    recovered = []
    for run_id in run_ids(layout):
        if only is not None and run_id != only:
            continue
        for run in read_run_rows(layout, run_id):
            if run["status"] == "running":
                found = _recover(layout, run_id, run)
                if found is not None:
                    recovered.append(found)
    return recovered


def _recover(layout: ResultsLayout, run_id: str, run: dict[str, Any]) -> Recovered | None:
    shard = Shard.of_row(run)
    lock = RunLock(layout, run_id, shard)
    if not lock.acquire():
        return None  # its collector is alive
    try:
        run = read_run(layout, run_id, shard) or run
        if run["status"] != "running":
            return None  # its collector recorded the end and let go between our read and our lock
        counter = _counter(lock.state())
        rows: list[dict[str, Any]] = []
        for directory in sorted((layout.raw / "requests").glob(f"*/{layout.run_table_dir('runs', run_id).name}")):
            rows.extend(compact_journals(directory, counter, shard.tag))
        ends = [r["ended_at"] for r in rows] + _last_end(layout, run_id, shard)
        resume = f"--resume {run_id}" + ("" if shard.is_whole else f" --shard {shard.label}")
        run.update(
            status="abandoned",
            ended_at=max(ends) if ends else run["started_at"],
            status_message="the collector process ended without recording the end of the run (killed?); "
            f"{len(rows)} finished request(s) were recovered from its journal; "
            f"`fmb collect CONFIG {resume}` sends the missing ones",
        )
        write_atomic([run], RUNS, run_path(layout, run_id, shard))
        return Recovered(run_id, len(rows))
    finally:
        lock.release()


def _last_end(layout: ResultsLayout, run_id: str, shard: Shard = WHOLE) -> list[datetime]:
    folder = layout.run_table_dir("runs", run_id).name
    parts = sorted((layout.raw / "requests").glob(f"*/{folder}/part-{shard.tag}*.parquet"))
    if not parts:
        return []
    table = ds.dataset(parts, format="parquet", schema=REQUESTS).to_table(columns=["ended_at"])
    ends = [e for e in table.column("ended_at").to_pylist() if e is not None]
    return [max(ends).astimezone(UTC)] if ends else []
