"""`fmb collect --resume RUN_ID`: which requests of a cut-short run are still missing.

A planned measured request is missing when its cell has no row for its index other than
a ``cancelled`` one (a request cut off by Ctrl-C is sent again). A resumed cell sends its
warm-ups again only if it never sent them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pyarrow.dataset as ds

from fmb.collector.recovery import read_run
from fmb.collector.runner import Cell
from fmb.collector.schemas import REQUESTS
from fmb.config import LoadedConfig
from fmb.errors import CollectError
from fmb.paths import ResultsLayout


@dataclass
class Resumption:
    """What a resumed run still has to send, and the session its rows are recorded under."""

    run: dict[str, Any]
    session: int
    missing: dict[Cell, list[int]] = field(default_factory=dict)
    warmed_up: set[Cell] = field(default_factory=set)

    @property
    def requests(self) -> int:
        return sum(len(m) for m in self.missing.values())


def _rows(layout: ResultsLayout, run_id: str) -> list[dict[str, Any]]:
    folder = layout.run_table_dir("runs", run_id).name
    parts = sorted((layout.raw / "requests").glob(f"*/{folder}/part-*.parquet"))
    if not parts:
        return []
    columns = ["experiment", "payload_file", "concurrency", "request_index", "is_warmup", "status", "session"]
    return ds.dataset(parts, format="parquet", schema=REQUESTS).to_table(columns=columns).to_pylist()


def plan_resumption(
    loaded: LoadedConfig, layout: ResultsLayout, run_id: str, cells: dict[str, list[Cell]]
) -> Resumption:
    """The missing requests of run ``run_id``, which must be a run of this very config."""
    run = read_run(layout, run_id)
    if run is None:
        raise CollectError(
            f"--resume {run_id}: there is no such run in {layout.raw / 'runs'}.",
            hint="`fmb collect` prints the run id; the runs mart lists them all.",
        )
    if run["benchmark"] != loaded.name or run["config_hash"] != loaded.config_hash:
        raise CollectError(
            f"--resume {run_id}: the run was collected with another config "
            f"(benchmark {run['benchmark']!r}, config hash {run['config_hash']}; this config: {loaded.name!r}, "
            f"{loaded.config_hash}).",
            hint="Resume with the same config file and -A values the run was started with.",
        )
    if run["status"] == "running":
        raise CollectError(
            f"--resume {run_id}: the run is still being collected by another fmb process.",
            hint="Wait for it to end (or stop it) and resume then.",
        )
    recorded = layout.run_table_dir("cells", run_id) / "cells.parquet"
    if recorded.is_file():
        planned = {
            (r["experiment"], r["payload_file"], r["concurrency"], r["planned_requests"], r["warmup_requests"])
            for r in ds.dataset(recorded, format="parquet").to_table().to_pylist()
        }
        now = {(c.experiment, c.payload_file, c.concurrency, c.requests, c.warmup) for cs in cells.values() for c in cs}
        if not now <= planned:
            raise CollectError(
                f"--resume {run_id}: the cells planned now differ from the run's "
                f"({len(now - planned)} cell(s) are new or have another request count).",
                hint="The payload files (or --experiment) changed since the run; resume with the files it used.",
            )
    done: dict[tuple[str, str, int], set[int]] = defaultdict(set)
    warmed: set[tuple[str, str, int]] = set()
    session = 0
    for row in _rows(layout, run_id):
        key = (row["experiment"], row["payload_file"], row["concurrency"])
        session = max(session, row["session"])
        if row["status"] == "cancelled":
            continue
        if row["is_warmup"]:
            warmed.add(key)
        else:
            done[key].add(row["request_index"])
    out = Resumption(run, session + 1)
    for experiment_cells in cells.values():
        for cell in experiment_cells:
            key = (cell.experiment, cell.payload_file, cell.concurrency)
            missing = [i for i in range(cell.warmup, cell.warmup + cell.requests) if i not in done[key]]
            if missing:
                out.missing[cell] = missing
            if key in warmed:
                out.warmed_up.add(cell)
    return out
