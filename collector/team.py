"""Several collector processes for one run: `fmb collect --processes N`.

One Python process has one event loop, and one event loop one core: past a few hundred
streamed requests a second the client, not the server, sets the pace. With ``--processes
N`` the run is collected by N processes on this host, each with its own event loop,
writer thread and part files. They are the N shards of one run (see
:mod:`fmb.collector.shard`): process I sends shard I/N's requests, from the worker slots
``w`` with ``w mod N == I - 1``, so together they keep the cell's concurrency in flight,
and the warehouse reads their rows as it reads any sharded run's.

Unlike shards on several hosts, the processes start every cell together. Before a cell
each waits at a barrier; the last to arrive sets the cell's start a couple of
milliseconds ahead on the host's monotonic clock (the clock ``time.perf_counter_ns``
reads, the same in every process), and each process starts its part then, so an
open-loop schedule stays one schedule. Only the first process samples the host, scrapes
the server's metrics and fetches CloudWatch metrics: one set of samples per run, as with
one collector. Each process samples its own CPU and event loop (the ``pid`` of
``raw/client_metrics``).

If one process stops with an error, the barrier is broken and the others stop at their
next cell with a ``failed`` run row that says so; Ctrl-C stops them all as ``interrupted``.
A resumed run (``--resume RUN_ID --processes N``) lets each process send its own missing
requests without waiting for the others, since their missing cells differ.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import signal
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmb.collector.shard import Shard
from fmb.errors import CollectError, FmbError

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized
    from multiprocessing.synchronize import Barrier

    from fmb.collector.collect import RunResult
    from fmb.config.loader import LoadedConfig
    from fmb.endpoints import Endpoint
    from fmb.paths import ResultsLayout

# How far ahead of the last arrival at the barrier a cell starts: enough for every process to wake.
START_AHEAD_NS = 5_000_000


STOPPED = "stopped by the user (Ctrl-C)"


class TeamBroken(CollectError):
    """Another collector process of the run stopped, so this one stops at its next cell."""


def _set_start(start: Synchronized[int]) -> None:
    start.value = time.perf_counter_ns() + START_AHEAD_NS


@dataclass
class Team:
    """What a collector process shares with the others of its run (picklable into a child process)."""

    barrier: Barrier | None  # None: no waiting for the others (a resumed run)
    start: Synchronized[int] | None
    lead: bool  # this process samples the host and the server for the run

    async def start_cell(self) -> int | None:
        """Wait until every process is ready for the next cell; when it starts (``time.perf_counter_ns()``)."""
        if self.barrier is None or self.start is None:
            return None
        barrier = self.barrier
        try:
            await asyncio.to_thread(barrier.wait)
        except asyncio.CancelledError:
            barrier.abort()  # frees the waiting thread (and the other processes) so that the run can stop
            raise
        except Exception as exc:  # threading.BrokenBarrierError: another process stopped
            raise TeamBroken(
                "another collector process of this run stopped, so this one stopped too",
                hint="Its error is above; fmb collect --resume RUN_ID --processes N sends what is missing.",
            ) from exc
        return int(self.start.value)


@dataclass
class _Outcome:
    """What a child process sends back: its result, or the error that stopped it."""

    result: RunResult | None = None
    error: str | None = None  # an FmbError's message
    hint: str | None = None
    trace: str | None = None  # an unexpected exception, with its traceback
    followed: bool = False  # stopped because another process had stopped


def _child(
    loaded: LoadedConfig,
    results: Path,
    endpoints: dict[str, Endpoint],
    options: dict[str, Any],
    team: Team,
    outbox: Any,
) -> None:
    from fmb.collector.collect import collect
    from fmb.paths import ResultsLayout

    outcome = _Outcome()
    try:
        outcome.result = collect(loaded, ResultsLayout(results), endpoints, team=team, **options)
    except FmbError as exc:
        outcome.error, outcome.hint = exc.message, exc.hint
        outcome.followed = isinstance(exc, TeamBroken)
    except KeyboardInterrupt:
        outcome.error = STOPPED
    except BaseException as exc:
        outcome.trace = "".join(traceback.format_exception(exc))
    outbox.put(outcome)


def collect_in_processes(
    loaded: LoadedConfig,
    layout: ResultsLayout,
    endpoints: dict[str, Endpoint],
    processes: int,
    *,
    quiet: bool = False,
    only: tuple[str, ...] = (),
    resume: str | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Collect one run with ``processes`` collector processes (see the module's docstring); the merged result."""
    from fmb.collector.recovery import recover_abandoned
    from fmb.collector.run_tables import new_run_id

    sweeping = [e.name for e in loaded.experiments if e.spec.load.stop_past_knee]
    if sweeping:
        raise CollectError(
            f"--processes {processes}: experiment {sweeping[0]!r} sweeps (load.stop_past_knee), and each process "
            "sees only part of a level's throughput, so none can tell where to stop.",
            hint="Collect a sweep with one process (the default).",
        )
    recovered = recover_abandoned(layout)  # before any process locks its part of the new run
    run_id = resume or run_id or new_run_id()
    context = multiprocessing.get_context("spawn")  # no forked copy of a running event loop or thread
    start = context.Value("q", 0)
    barrier = None if resume else context.Barrier(processes, action=functools.partial(_set_start, start))
    outbox = context.Queue()
    children = []
    for index in range(1, processes + 1):
        options = {
            "quiet": quiet or index > 1,  # the first process shows its progress
            "only": only,
            "resume": resume,
            "run_id": None if resume else run_id,
            "shard": Shard(index, processes),
        }
        team = Team(barrier, start, lead=index == 1)
        children.append(
            context.Process(
                target=_child,
                args=(loaded, layout.root, endpoints, options, team, outbox),
                name=f"fmb-collector-{index}",
            )
        )
    outcomes: list[_Outcome] = []
    for child in children:
        child.start()  # before SIGINT is ignored here: an ignored signal stays ignored in a child
    # Ctrl-C reaches the children from the terminal; this process waits for them to record it.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    terminate = signal.signal(signal.SIGTERM, lambda signum, frame: _terminate(children))
    try:
        while len(outcomes) < len(children):
            try:
                outcomes.append(outbox.get(timeout=0.2))
                if barrier is not None and (outcomes[-1].error or outcomes[-1].trace):
                    barrier.abort()
            except Exception:  # queue.Empty
                dead = [c for c in children if c.exitcode not in (None, 0)]
                if dead and len(outcomes) + len(dead) >= len(children):
                    break  # a process died without a word (killed): there is nothing more to wait for
                if dead and barrier is not None:
                    barrier.abort()
        for child in children:
            child.join()
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, terminate)
    results = [o.result for o in outcomes if o.result is not None]
    merged = _merge(run_id, results, recovered)
    # The process whose error stopped the run, not those that stopped because it had.
    causes = [o for o in outcomes if (o.error or o.trace) and not o.followed and o.error != STOPPED]
    first = causes[0] if causes else None
    if first is not None and first.trace:
        raise CollectError(f"a collector process of run {run_id} failed:\n{first.trace}")
    if first is None and (any(o.error == STOPPED for o in outcomes) or merged.status == "interrupted"):
        merged.status, merged.message = "interrupted", "stopped by the user (Ctrl-C or SIGTERM)"
        return merged
    lost = len(children) - len(outcomes)
    if first is not None or lost or len(results) < len(children):
        what = first.error if first is not None else f"{lost} collector process(es) ended without a result (killed?)"
        raise CollectError(
            f"run {run_id}, collected by {processes} processes: {what}",
            hint=(first.hint if first is not None else None)
            or f"fmb collect --resume {run_id} --processes {processes} sends what is missing.",
        )
    return merged


def _terminate(children: list[Any]) -> None:
    for child in children:
        if child.pid is not None and child.exitcode is None:
            os.kill(child.pid, signal.SIGTERM)


def _merge(run_id: str, results: list[RunResult], recovered: list[Any]) -> RunResult:
    """One result for the run: the processes' requests and errors added up per cell, the median over all."""
    from fmb.collector.collect import CellResult, RunResult

    merged = RunResult(run_id, "completed", recovered=recovered)
    order: dict[Any, None] = {}
    parts: dict[Any, list[CellResult]] = defaultdict(list)
    statuses = [r.status for r in results]
    for result in results:
        merged.rows += result.rows
        merged.client_busy += [b for b in result.client_busy if b not in merged.client_busy]
        merged.message = merged.message or result.message
        if result.resumed_requests is not None:
            merged.resumed_requests = (merged.resumed_requests or 0) + result.resumed_requests
        for cell in result.cells:
            order.setdefault(cell.cell)
            parts[cell.cell].append(cell)
    for status in ("failed", "interrupted", "running"):
        if status in statuses:
            merged.status = status
            break
    for cell in order:
        latencies = sorted(v for c in parts[cell] for v in c.latencies_ms)
        merged.cells.append(
            replace(
                parts[cell][0],
                requests=sum(c.requests for c in parts[cell]),
                errors=sum(c.errors for c in parts[cell]),
                p50_ms=_median(latencies),
                latencies_ms=latencies,
            )
        )
    merged.processes = len(results)
    return merged


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
