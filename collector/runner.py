"""One asyncio runner for every endpoint API: sending (``send_one``) apart from scheduling.

Scheduling is closed-loop and continuous: ``concurrency`` workers share one sequence of
request indices, and a worker takes the next index as soon as its request has ended, so
exactly ``concurrency`` requests are in flight until the cell runs out (no waves).
An open-loop schedule (requests sent at given times) would call ``send_one`` the same way.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import aiohttp

from fmb.collector.arrivals import Schedule
from fmb.collector.client_telemetry import ClientLoad
from fmb.collector.schemas import RequestStatus
from fmb.collector.shard import WHOLE, Shard
from fmb.collector.targets.base import EndpointError, Recorder, Request, Target, Usage
from fmb.prepare.tokens import TokenCounter
from fmb.redact import Redactor


@dataclass(frozen=True)
class Cell:
    """One (experiment, payload file, concurrency) combination and its request count.

    ``load_mode`` says how its requests are sent (see :class:`fmb.config.schema.Load`); an
    open-loop or trace cell carries its precomputed ``schedule`` (warm-ups first), and its
    ``concurrency`` is the cap on requests in flight.
    """

    experiment: str
    payload_file: str
    concurrency: int
    requests: int
    warmup: int = 0
    load_mode: str = "closed"
    schedule: Schedule | None = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        if self.schedule is not None:
            return f"{self.experiment} | {self.payload_file}"
        return f"{self.experiment} | {self.payload_file} | c={self.concurrency}"


@dataclass(frozen=True)
class Policy:
    """How long a request may take, and how often a throttled one is tried again."""

    timeout_s: float = 120.0
    max_attempts: int = 1
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter before try ``attempt + 1``."""
        return min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s) * random.uniform(0.5, 1.0)


@dataclass
class Failure:
    status: RequestStatus
    error_type: str
    message: str
    http_status: int | None = None


@dataclass
class CellStats:
    """What the progress display shows while a cell runs (latencies kept sorted: the median is a lookup)."""

    done: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def add_latency(self, ms: float) -> None:
        bisect.insort(self.latencies_ms, ms)

    def p50_ms(self) -> float | None:
        values = self.latencies_ms
        if not values:
            return None
        middle = len(values) // 2
        return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def classify(exc: BaseException, timeout_s: float) -> Failure:
    """A failure row's status, type and message for an exception raised while sending."""
    if isinstance(exc, EndpointError):
        return Failure(exc.status, exc.error_type, exc.message, exc.http_status)
    if isinstance(exc, TimeoutError):
        return Failure("timeout", type(exc).__name__, f"no complete response within {timeout_s:g} s")
    if isinstance(exc, aiohttp.ClientError):
        return Failure("error", type(exc).__name__, str(exc) or type(exc).__name__)
    # An unexpected error inside a target: recorded, and the run goes on.
    return Failure("error", type(exc).__name__, str(exc)[:300] or type(exc).__name__)


async def send_one(
    target: Target, request: Request, policy: Policy, rec: Recorder
) -> tuple[Usage | None, Failure | None]:
    """Send one request, trying again after throttling as the policy allows; never raises but on cancellation.

    Each try has the full timeout; a retry restarts the clock and is counted in ``rec.attempts``.
    """
    tries = 1  # tries after throttling; rec.attempts also counts re-sends on a closed kept-alive connection
    while True:
        usage, failure = await _try_once(target, request, policy.timeout_s, rec)
        if failure is None or failure.status != "throttled" or tries >= policy.max_attempts:
            return usage, failure
        await asyncio.sleep(policy.backoff(tries))
        tries += 1
        rec.restart()


async def _try_once(
    target: Target, request: Request, timeout_s: float, rec: Recorder
) -> tuple[Usage | None, Failure | None]:
    try:
        async with asyncio.timeout(timeout_s):
            usage = await target.send(request, rec)
        rec.finish()
        if target.stream and not rec.chunk_ns:
            # Nothing was generated, or nothing fmb could read: no TTFT, and never an `ok`.
            return None, Failure(
                "error", "empty_stream", "the streamed response carried no generated content", rec.http_status
            )
        return usage, None
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure becomes a row
        if rec.start_ns is None:
            rec.start()
        rec.finish()
        failure = classify(exc, timeout_s)
        if failure.http_status is None:
            failure.http_status = rec.http_status
        return None, failure


@dataclass(frozen=True)
class Due:
    """When a scheduled request was due: on the monotonic clock the latencies use, and on the wall clock."""

    perf_ns: int
    wall_ns: int


class RowMaker:
    """Turns a finished request into a row of the ``requests`` table."""

    def __init__(
        self,
        run_id: str,
        stream: bool,
        counter: TokenCounter,
        redact: Redactor,
        session: int = 0,
        shard: Shard = WHOLE,
    ):
        self.run_id = run_id
        self.session = session
        self.shard = shard
        self.stream = stream
        self.counter = counter
        self.redact = redact
        self._prompt_tokens: dict[str, int] = {}

    def count_prompts(self, requests: Sequence[Request]) -> None:
        """Count the tokens of prompts about to be sent in one batch, before their cells start, instead of
        one by one on the event loop as each is first sent."""
        new = {r.prompt_id: r.prompt for r in requests if r.prompt_id not in self._prompt_tokens}
        for prompt_id, count in zip(new, self.counter.count_many(list(new.values())), strict=True):
            self._prompt_tokens[prompt_id] = count

    def prompt_tokens(self, request: Request) -> int:
        if request.prompt_id not in self._prompt_tokens:
            self._prompt_tokens[request.prompt_id] = self.counter.count(request.prompt)
        return self._prompt_tokens[request.prompt_id]

    def row(
        self,
        cell: Cell,
        index: int,
        worker: int,
        request: Request,
        rec: Recorder,
        usage: Usage | None,
        failure: Failure | None,
        is_warmup: bool,
        due: Due | None = None,
    ) -> dict[str, Any]:
        """``due`` is when an open-loop request was scheduled to be sent."""
        assert rec.start_ns is not None and rec.end_ns is not None and rec.start_wall_ns is not None
        start, end = rec.start_ns, rec.end_ns
        chunks = rec.chunk_ns if self.stream else []
        usage = usage or Usage()
        ok = failure is None
        prompt_client = self.prompt_tokens(request)
        started = rec.start_wall_ns
        return {
            "run_id": self.run_id,
            "experiment": cell.experiment,
            "payload_file": cell.payload_file,
            "concurrency": cell.concurrency,
            "request_index": index,
            "worker": worker,
            "prompt_id": request.prompt_id,
            "is_warmup": is_warmup,
            "session": self.session,
            "shard": self.shard.index,
            "shard_count": self.shard.count,
            "model_copy": rec.model_copy,
            "attempts": rec.attempts,
            "started_at": datetime.fromtimestamp(started / 1e9, UTC),
            "ended_at": datetime.fromtimestamp((started + end - start) / 1e9, UTC),
            "scheduled_at": None if due is None else datetime.fromtimestamp(due.wall_ns / 1e9, UTC),
            "send_lateness_ms": None if due is None else (start - due.perf_ns) / 1e6,
            "ttft_ms": (chunks[0] - start) / 1e6 if chunks else None,
            "ttlt_ms": (chunks[-1] - start) / 1e6 if chunks else None,
            "e2e_latency_ms": (end - start) / 1e6,
            "chunk_gaps_ms": [(b - a) / 1e6 for a, b in pairwise(chunks)] if chunks else None,
            "content_chunks": len(chunks) if self.stream else None,
            "prompt_tokens_server": usage.prompt_tokens,
            "completion_tokens_server": usage.completion_tokens,
            "prompt_tokens_client": prompt_client,
            "completion_tokens_client": None,  # counted in batches by the writer (fmb.collector.writer)
            "stream": self.stream,
            "status": "ok" if failure is None else failure.status,
            "http_status": rec.http_status if failure is None else failure.http_status,
            "error_type": None if failure is None else failure.error_type,
            "error_message": None if failure is None else self.redact.shortened(failure.message, 300),
            "completion_text": self.redact.known(rec.text) if ok else None,
        }


async def closed_loop(
    concurrency: int,
    indices: Sequence[int],
    job: Callable[[int, int], Awaitable[None]],
    slots: Sequence[int] | None = None,
) -> None:
    """Run ``job(index, worker)`` for each of ``indices`` with ``concurrency`` in flight.

    ``slots`` names the workers (a shard runs some of a cell's slots, see
    :mod:`fmb.collector.shard`); then ``len(slots)`` are in flight.
    """
    shared = iter(indices)
    workers = list(range(concurrency)) if slots is None else list(slots)

    async def worker(w: int) -> None:
        for i in shared:  # one shared iterator: each index is taken exactly once
            await job(i, w)

    async with asyncio.TaskGroup() as group:
        for w in workers[: len(indices)]:
            group.create_task(worker(w))


async def waves(
    concurrency: int,
    indices: Sequence[int],
    job: Callable[[int, int], Coroutine[Any, Any, None]],
    first: int = 0,
    slots: Sequence[int] | None = None,
) -> None:
    """FMBench's way: send a wave of ``concurrency`` requests, wait until all have ended, send the next.

    Request ``index`` belongs to wave ``(index - first) // concurrency`` and slot ``index % concurrency``;
    a wave sends only the ``indices`` it holds (all of them, or a shard's or a resumed cell's).
    """
    by_wave: dict[int, list[int]] = {}
    for i in indices:
        by_wave.setdefault((i - first) // concurrency, []).append(i)
    allowed = None if slots is None else set(slots)
    for wave in sorted(by_wave):
        async with asyncio.TaskGroup() as group:
            for i in by_wave[wave]:
                w = i % concurrency
                if allowed is None or w in allowed:
                    group.create_task(job(i, w))


async def _until(at_ns: int) -> None:
    """Sleep until ``time.perf_counter_ns()`` reaches ``at_ns``, never less.

    uvloop's timers count whole milliseconds and may fire up to one early, which would send a
    request before it was due (a negative lateness); the last stretch is waited out again.
    """
    while (left := at_ns - time.perf_counter_ns()) > 0:
        await asyncio.sleep(left / 1e9 if left > 1_000_000 else 0)


async def open_loop(
    due: Sequence[tuple[int, float]],
    cap: int | None,
    job: Callable[[int, int, Due], Coroutine[Any, Any, None]],
    origin_ns: int | None = None,
) -> None:
    """Start ``job(index, slot, due)`` for each ``(index, offset_s)`` when it is due, whatever is in flight.

    Offsets are seconds from ``origin_ns`` on ``time.perf_counter_ns()``'s clock (by default now;
    the collector processes of one run share one, see :mod:`fmb.collector.team`). With a ``cap``,
    a request due while ``cap`` are in flight waits for one to end (its wait is lateness,
    recorded in its row). ``slot`` is the lowest free in-flight slot, so the ``worker`` column
    of an open-loop row still says how many were busy.
    """
    now_perf, now_wall = time.perf_counter_ns(), time.time_ns()
    origin_perf = now_perf if origin_ns is None else origin_ns
    origin_wall = now_wall + (origin_perf - now_perf)
    free: list[int] = []
    busy = 0
    ended = asyncio.Event()

    async def run(index: int, slot: int, when: Due) -> None:
        nonlocal busy
        try:
            await job(index, slot, when)
        finally:
            busy -= 1
            heapq.heappush(free, slot)
            ended.set()

    async with asyncio.TaskGroup() as group:
        for index, offset in due:
            at = origin_perf + round(offset * 1e9)
            await _until(at)
            while cap is not None and busy >= cap:
                ended.clear()
                await ended.wait()
            slot = heapq.heappop(free) if free else busy
            busy += 1
            group.create_task(run(index, slot, Due(at, origin_wall + (at - origin_perf))))


def nearest_prompts(
    prompts: list[Request], lengths: Sequence[int | None], tokens: Callable[[Request], int]
) -> list[Request]:
    """Trace replay: for each request the prompt whose token count is nearest its input length (ties: the first).

    A request without an input length sends the payload file's prompts in turn, as in closed loop.
    """
    counted = sorted(((tokens(p), n) for n, p in enumerate(prompts)))
    keys = [c for c, _ in counted]
    picks = []
    for index, length in enumerate(lengths):
        if length is None:
            picks.append(prompts[index % len(prompts)])
            continue
        at = bisect.bisect_left(keys, length)
        near = [j for j in (at - 1, at) if 0 <= j < len(counted)]
        best = min(near, key=lambda j: (abs(keys[j] - length), counted[j][1]))
        picks.append(prompts[counted[best][1]])
    return picks


async def run_cell(
    target: Target,
    cell: Cell,
    prompts: list[Request],
    rows: RowMaker,
    sink: Callable[[dict[str, Any]], None],
    policy: Policy,
    stats: CellStats,
    missing: Sequence[int] | None = None,
    warmup: bool = True,
    load: ClientLoad | None = None,
    shard: Shard = WHOLE,
    origin_ns: int | None = None,
) -> None:
    """Warm-up requests, then ``cell.requests`` measured ones, each written through ``sink``.

    Request ``index`` (warm-ups first) sends prompt ``index`` of the payload file, cycling
    when the cell needs more requests than the file has prompts. ``missing`` limits the
    measured requests to those indices (a resumed cell). A request cut off by
    cancellation (Ctrl-C) is written as a ``cancelled`` row before the cancellation goes on.
    ``load`` counts the requests in flight for the client telemetry. A ``shard`` sends only
    its part of the cell, from its worker slots (see :mod:`fmb.collector.shard`). ``origin_ns``
    (``time.perf_counter_ns()``'s clock) is when the cell starts: the collector processes of one
    run start each cell together (see :mod:`fmb.collector.team`); by default it starts now.
    """
    load = load or ClientLoad()
    if origin_ns is not None:
        await _until(origin_ns)
    schedule = cell.schedule
    picks = prompts
    if schedule is not None and schedule.input_lengths is not None:
        picks = nearest_prompts(prompts, schedule.input_lengths, rows.prompt_tokens)
    outputs = schedule.output_lengths if schedule is not None else None

    def job_for(is_warmup: bool) -> Callable[[int, int], Coroutine[Any, Any, None]]:
        return lambda index, w: timed_job(index, w, is_warmup, None)

    async def timed_job(index: int, w: int, is_warmup: bool, due: Due | None) -> None:
        request = picks[index % len(picks)]
        if outputs is not None and outputs[index] is not None:
            request = replace(request, max_output_tokens=outputs[index])  # the trace's output length
        rec = Recorder()
        load.start()
        try:
            usage, failure = await send_one(target, request, policy, rec)
        except asyncio.CancelledError:
            load.end()
            if rec.start_ns is None:
                rec.start()
            rec.finish()
            stopped = Failure("cancelled", "cancelled", "the run was stopped while the request was in flight")
            sink(rows.row(cell, index, w, request, rec, None, stopped, is_warmup, due))
            raise
        load.end()
        sink(rows.row(cell, index, w, request, rec, usage, failure, is_warmup, due))
        if not is_warmup:
            stats.done += 1
            if failure is None:
                stats.add_latency((rec.end_ns - rec.start_ns) / 1e6)
            else:
                stats.errors += 1

    measured = range(cell.warmup, cell.warmup + cell.requests) if missing is None else missing
    if schedule is not None:
        # Warm-ups (the ramp) and measured requests on one schedule; a resumed cell sends its missing
        # requests at their offsets, from the first of them.
        wanted = [*(range(cell.warmup) if warmup and missing is None else ()), *measured]
        mine = shard.indices(cell.concurrency, wanted)
        if not mine:
            return
        # From the cell's first request, whichever shard sends it: the shards keep one schedule.
        first = schedule.offsets[wanted[0]]
        cap = len(shard.slots(cell.concurrency))
        await open_loop(
            [(i, schedule.offsets[i] - first) for i in mine],
            cap,
            lambda index, w, due: timed_job(index, w, index < cell.warmup, due),
            origin_ns,
        )
        return
    slots = shard.slots(cell.concurrency)
    if cell.warmup and warmup:
        await closed_loop(cell.concurrency, shard.indices(cell.concurrency, range(cell.warmup)), job_for(True), slots)
    if cell.load_mode == "waves":
        await waves(cell.concurrency, shard.indices(cell.concurrency, measured), job_for(False), cell.warmup, slots)
        return
    await closed_loop(cell.concurrency, shard.indices(cell.concurrency, measured), job_for(False), slots)
