"""Client telemetry: the collector's own CPU use, event-loop lag and requests in flight.

A benchmark client can itself be the bottleneck: a collector that has no CPU left, or
whose event loop is late, measures its own delays as the server's latency. While `fmb
collect` runs, a small task on the event loop wakes every ``PROBE_S`` seconds and notes
how late it woke (the loop's lag), and every ``telemetry.client_interval_s`` seconds
(default 1) it closes an interval: the process's CPU time over the interval (all its
threads, in percent of one core), the longest and the mean lag, and the requests in
flight (at the end, and the most at once), started and ended during the interval. Each
interval is a row of ``raw/client_metrics``; the warehouse flags the cells whose client
was saturated (``server_states.is_client_saturated``).

On the loop the sampler only reads two clocks and appends a dict; a thread turns the
rows into Parquet (:class:`fmb.collector.sample_parts.SampleParts`) about once a second,
so a killed collector loses at most the last second of samples.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmb.collector.sample_parts import SampleParts
from fmb.collector.schemas import CLIENT_METRICS

if TYPE_CHECKING:
    from fmb.config.schema import Telemetry
    from fmb.paths import ResultsLayout

# How often the loop-lag probe wakes: often enough to see a stall of a few tens of ms.
PROBE_S = 0.02
FLUSH_EVERY_S = 1.0


class ClientLoad:
    """Requests in flight, counted by the runner on the event loop (plain integers, no locks)."""

    __slots__ = ("ended", "in_flight", "in_flight_max", "started")

    def __init__(self) -> None:
        self.in_flight = 0
        self.in_flight_max = 0
        self.started = 0
        self.ended = 0

    def start(self) -> None:
        self.in_flight += 1
        self.started += 1
        if self.in_flight > self.in_flight_max:
            self.in_flight_max = self.in_flight

    def end(self) -> None:
        self.in_flight -= 1
        self.ended += 1

    def take(self) -> tuple[int, int, int, int]:
        """In flight now, most in flight, started and ended since the last take; starts a new interval."""
        figures = (self.in_flight, self.in_flight_max, self.started, self.ended)
        self.in_flight_max, self.started, self.ended = self.in_flight, 0, 0
        return figures


class ClientSampler:
    """Samples the running event loop's process into ``directory`` while :meth:`sampling` is entered."""

    def __init__(
        self,
        directory: Path,
        run_id: str,
        interval_s: float = 1.0,
        *,
        load: ClientLoad | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.interval_s = interval_s
        self.load = load or ClientLoad()
        self.notes: list[str] = []
        self._on_note = note
        self._parts = SampleParts(directory, CLIENT_METRICS, note=self.note)
        self._pending: deque[dict[str, Any]] = deque()  # rows closed on the loop, not yet handed to the writer
        self._host = socket.gethostname()
        self._pid = os.getpid()
        self._stop = threading.Event()

    @property
    def rows_written(self) -> int:
        return self._parts.rows_written

    def note(self, text: str) -> None:
        self.notes.append(text)
        if self._on_note is not None:
            try:
                self._on_note(text)
            except Exception:  # a note never stops anything
                pass

    @asynccontextmanager
    async def sampling(self) -> AsyncIterator[ClientLoad]:
        """Sample for the length of the block; the rows are on disk when it ends."""
        probe = asyncio.create_task(self._probe(), name="fmb-client-telemetry")
        writer = threading.Thread(target=self._write, name="fmb-client-telemetry-writer", daemon=True)
        writer.start()
        try:
            yield self.load
        finally:
            probe.cancel()
            try:
                await probe
            except asyncio.CancelledError:
                pass
            self._stop.set()
            writer.join(timeout=30)
            self._hand_over()
            self._parts.flush()

    async def _probe(self) -> None:
        interval_start = time.monotonic()
        cpu_start = time.process_time()
        lags: list[float] = []
        try:
            while True:
                due = time.monotonic() + PROBE_S
                await asyncio.sleep(PROBE_S)
                now = time.monotonic()
                lags.append(max(0.0, now - due))
                if now - interval_start >= self.interval_s:
                    cpu = time.process_time()
                    self._close(now - interval_start, cpu - cpu_start, lags)
                    interval_start, cpu_start, lags = now, cpu, []
        except asyncio.CancelledError:
            now = time.monotonic()
            if lags and now - interval_start >= PROBE_S:  # the last, shorter interval
                self._close(now - interval_start, time.process_time() - cpu_start, lags)
            raise

    def _close(self, seconds: float, cpu_seconds: float, lags: list[float]) -> None:
        in_flight, in_flight_max, started, ended = self.load.take()
        self._pending.append(
            {
                "run_id": self.run_id,
                "host": self._host,
                "pid": self._pid,
                "sampled_at": datetime.now(UTC),
                "interval_s": seconds,
                "cpu_percent": 100.0 * cpu_seconds / seconds,
                "loop_lag_max_ms": 1000.0 * max(lags),
                "loop_lag_mean_ms": 1000.0 * sum(lags) / len(lags),
                "in_flight": in_flight,
                "in_flight_max": in_flight_max,
                "requests_started": started,
                "requests_ended": ended,
            }
        )

    def _hand_over(self) -> None:
        rows = []
        while self._pending:  # a deque's append and popleft are thread-safe
            rows.append(self._pending.popleft())
        if rows:
            self._parts.add(rows)

    def _write(self) -> None:
        while not self._stop.wait(FLUSH_EVERY_S):
            try:
                self._hand_over()
                self._parts.flush()
            except Exception as exc:  # never the collection's problem
                self.note(f"client telemetry stopped being written: {type(exc).__name__}: {exc}")
                return


@asynccontextmanager
async def client_sampling(settings: Telemetry, layout: ResultsLayout, run_id: str) -> AsyncIterator[ClientLoad]:
    """Client telemetry for the length of the block, unless the config's ``telemetry.client`` is off.

    Either way the block gets the :class:`ClientLoad` the runner counts requests in flight with.
    """
    if not settings.client:
        yield ClientLoad()
        return
    sampler = ClientSampler(layout.client_metrics_dir(run_id), run_id, settings.client_interval_s)
    async with sampler.sampling() as load:
        yield load
