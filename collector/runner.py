"""One asyncio runner for every endpoint API: sending (``send_one``) apart from scheduling.

Scheduling is closed-loop and continuous: ``concurrency`` workers share one sequence of
request indices, and a worker takes the next index as soon as its request has ended, so
exactly ``concurrency`` requests are in flight until the cell runs out (no waves).
An open-loop schedule (requests sent at given times) would call ``send_one`` the same way.
"""

from __future__ import annotations

import asyncio
import bisect
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import aiohttp

from fmb.collector.client_telemetry import ClientLoad
from fmb.collector.schemas import RequestStatus
from fmb.collector.shard import WHOLE, Shard
from fmb.collector.targets.base import EndpointError, Recorder, Request, Target, Usage
from fmb.prepare.tokens import TokenCounter
from fmb.redact import Redactor


@dataclass(frozen=True)
class Cell:
    """One (experiment, payload file, concurrency) combination and its request count."""

    experiment: str
    payload_file: str
    concurrency: int
    requests: int
    warmup: int = 0

    @property
    def label(self) -> str:
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
    ) -> dict[str, Any]:
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
) -> None:
    """Warm-up requests, then ``cell.requests`` measured ones, each written through ``sink``.

    Request ``index`` (warm-ups first) sends prompt ``index`` of the payload file, cycling
    when the cell needs more requests than the file has prompts. ``missing`` limits the
    measured requests to those indices (a resumed cell). A request cut off by
    cancellation (Ctrl-C) is written as a ``cancelled`` row before the cancellation goes on.
    ``load`` counts the requests in flight for the client telemetry. A ``shard`` sends only
    its part of the cell, from its worker slots (see :mod:`fmb.collector.shard`).
    """
    load = load or ClientLoad()

    def job_for(is_warmup: bool) -> Callable[[int, int], Awaitable[None]]:
        async def job(index: int, w: int) -> None:
            request = prompts[index % len(prompts)]
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
                sink(rows.row(cell, index, w, request, rec, None, stopped, is_warmup))
                raise
            load.end()
            sink(rows.row(cell, index, w, request, rec, usage, failure, is_warmup))
            if not is_warmup:
                stats.done += 1
                if failure is None:
                    stats.add_latency((rec.end_ns - rec.start_ns) / 1e6)
                else:
                    stats.errors += 1

        return job

    slots = shard.slots(cell.concurrency)
    if cell.warmup and warmup:
        await closed_loop(cell.concurrency, shard.indices(cell.concurrency, range(cell.warmup)), job_for(True), slots)
    measured = range(cell.warmup, cell.warmup + cell.requests) if missing is None else missing
    await closed_loop(cell.concurrency, shard.indices(cell.concurrency, measured), job_for(False), slots)
