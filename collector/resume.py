"""`fmb collect --resume RUN_ID`: which requests of a cut-short run are still missing.

A planned measured request is missing when its cell has no row for its index other than
a ``cancelled`` one (a request cut off by Ctrl-C is sent again). A resumed cell sends its
warm-ups again only if it never sent them.

A shard of a sharded run is resumed on its own (``--resume RUN_ID --shard I/N``): only
its own requests (see :mod:`fmb.collector.shard`) are looked at and sent. A run is either
collected whole or in shards of one count, never both: :func:`check_new_run` refuses a
``--run-id`` that would mix them, or start a shard twice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pyarrow.dataset as ds

from fmb.collector.recovery import read_run, read_run_rows
from fmb.collector.runner import Cell
from fmb.collector.schemas import REQUESTS
from fmb.collector.shard import WHOLE, Shard
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


def _shard_counts(rows: list[dict[str, Any]]) -> set[int]:
    return {Shard.of_row(r).count for r in rows}


def check_new_run(
    loaded: LoadedConfig, layout: ResultsLayout, run_id: str, shard: Shard, cells: dict[str, list[Cell]]
) -> None:
    """A new collection into ``run_id`` (--run-id): a new run, or a shard not started yet of a run of this
    config that plans the same cells."""
    rows = read_run_rows(layout, run_id)
    if not rows:
        return
    option = f"--run-id {run_id}"
    if shard.is_whole or _shard_counts(rows) != {shard.count}:
        counts = ", ".join(str(c) for c in sorted(_shard_counts(rows)))
        raise CollectError(
            f"{option}{'' if shard.is_whole else f' --shard {shard.label}'}: run {run_id} already exists "
            f"(collected in {counts} shard(s)).",
            hint="Give a new run id; the shards of one run share one N (--shard I/N); "
            "`--resume RUN_ID` sends what a cut-short run did not.",
        )
    if read_run(layout, run_id, shard) is not None:
        raise CollectError(
            f"{option} --shard {shard.label}: this shard of the run was already started.",
            hint=f"To send what it did not: fmb collect CONFIG --resume {run_id} --shard {shard.label}",
        )
    _check_config(loaded, rows[0], option)
    _check_cells(layout, run_id, cells, f"{option} --shard {shard.label}", same=True)


def _check_cells(layout: ResultsLayout, run_id: str, cells: dict[str, list[Cell]], option: str, *, same: bool) -> None:
    """The cells planned now are the run's (``same``: all of them, as a new shard plans) or some of them."""
    recorded = layout.run_table_dir("cells", run_id) / "cells.parquet"
    if not recorded.is_file():
        return
    planned = {
        (r["experiment"], r["payload_file"], r["concurrency"], r["planned_requests"], r["warmup_requests"])
        for r in ds.dataset(recorded, format="parquet").to_table().to_pylist()
    }
    now = {(c.experiment, c.payload_file, c.concurrency, c.requests, c.warmup) for cs in cells.values() for c in cs}
    if not now <= planned:
        raise CollectError(
            f"{option}: the cells planned now differ from the run's "
            f"({len(now - planned)} cell(s) are new or have another request count).",
            hint="The payload files (or --experiment) changed since the run; collect it with the files it used.",
        )
    if same and now != planned:
        raise CollectError(
            f"{option}: this shard would plan {len(now)} of the run's {len(planned)} cells.",
            hint="Every shard of a run plans the same cells: give each the same --experiment options (or none).",
        )


def _skipped_cells(layout: ResultsLayout, run_id: str) -> set[tuple[str, str, int]]:
    """The cells a sweep of the run left out (load.stop_past_knee): they are not missing."""
    recorded = layout.run_table_dir("cells", run_id) / "cells.parquet"
    if not recorded.is_file():
        return set()
    return {
        (r["experiment"], r["payload_file"], r["concurrency"])
        for r in ds.dataset(recorded, format="parquet").to_table().to_pylist()
        if r.get("skip_reason")
    }


def _check_config(loaded: LoadedConfig, run: dict[str, Any], option: str) -> None:
    if run["benchmark"] != loaded.name or run["config_hash"] != loaded.config_hash:
        raise CollectError(
            f"{option}: the run was collected with another config "
            f"(benchmark {run['benchmark']!r}, config hash {run['config_hash']}; this config: {loaded.name!r}, "
            f"{loaded.config_hash}).",
            hint="Resume with the same config file and -A values the run was started with.",
        )


def _read_shard_run(layout: ResultsLayout, run_id: str, shard: Shard) -> dict[str, Any]:
    run = read_run(layout, run_id, shard)
    if run is not None:
        return run
    rows = read_run_rows(layout, run_id)
    option = f"--resume {run_id}" + ("" if shard.is_whole else f" --shard {shard.label}")
    if not rows:
        raise CollectError(
            f"--resume {run_id}: there is no such run in {layout.raw / 'runs'}.",
            hint="`fmb collect` prints the run id; the runs mart lists them all.",
        )
    counts = _shard_counts(rows)
    if counts != {shard.count}:
        count = max(counts)
        raise CollectError(
            f"{option}: the run was collected "
            + ("on one collector, not in shards." if count == 1 else f"in {count} shards; name the shard."),
            hint="Resume it as it was collected: "
            + ("without --shard." if count == 1 else f"--resume {run_id} --shard I/{count}, once per shard."),
        )
    raise CollectError(
        f"{option}: this shard of the run never started, so there is nothing to resume.",
        hint=f"Start it: fmb collect CONFIG --run-id {run_id} --shard {shard.label}",
    )


def plan_resumption(
    loaded: LoadedConfig,
    layout: ResultsLayout,
    run_id: str,
    cells: dict[str, list[Cell]],
    shard: Shard = WHOLE,
) -> Resumption:
    """The missing requests of run ``run_id`` (of its shard ``shard``), which must be a run of this very config."""
    run = _read_shard_run(layout, run_id, shard)
    _check_config(loaded, run, f"--resume {run_id}")
    if run["status"] == "running":
        raise CollectError(
            f"--resume {run_id}: the run"
            + ("" if shard.is_whole else f"'s shard {shard.label}")
            + " is still being collected by another fmb process.",
            hint="Wait for it to end (or stop it) and resume then.",
        )
    _check_cells(layout, run_id, cells, f"--resume {run_id}", same=False)
    skipped = _skipped_cells(layout, run_id)
    done: dict[tuple[str, str, int], set[int]] = defaultdict(set)
    warmed: set[tuple[str, str, int]] = set()
    session = 0
    for row in _rows(layout, run_id):
        key = (row["experiment"], row["payload_file"], row["concurrency"])
        session = max(session, row["session"])
        if row["status"] == "cancelled" or not shard.owns(row["concurrency"], row["request_index"]):
            continue
        if row["is_warmup"]:
            warmed.add(key)
        else:
            done[key].add(row["request_index"])
    out = Resumption(run, session + 1)
    for experiment_cells in cells.values():
        for cell in experiment_cells:
            key = (cell.experiment, cell.payload_file, cell.concurrency)
            if key in skipped:  # a sweep left it out on purpose
                continue
            planned = shard.indices(cell.concurrency, range(cell.warmup, cell.warmup + cell.requests))
            missing = [i for i in planned if i not in done[key]]
            if missing:
                out.missing[cell] = missing
            if key in warmed:
                out.warmed_up.add(cell)
    return out
