"""Sweeps that stop past the knee (``load.stop_past_knee``): live estimates while a run goes on.

A sweep sends an experiment's levels from the lowest up, per payload file, and leaves out the
levels above the first one that stops the rise: its throughput grew by less than
``knee_min_throughput_gain`` over the level below, its share of requests within the SLO fell
under ``knee_min_slo_attainment``, or its client fell behind its schedule (p99 send lateness
over ``lateness_threshold_ms``). These are estimates from the rows as they are written, only
to decide what to send; the knee itself, and every figure, come from the warehouse
(``load_curves``), which applies the same rule to the exact figures. The time per output
token objective counts the server's completion tokens, else the client's (the tokenizer's
count of the text, taken here only when there is such an objective), as the warehouse does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fmb.config.schema import Load, Slo

if TYPE_CHECKING:
    from fmb.collector.runner import Cell


@dataclass
class LevelMeter:
    """What one cell (a level of a curve) measured so far."""

    slo: Slo
    counter: Any = None  # counts a completion's tokens when the server gave no count (a TokenCounter)
    measured: int = 0
    successes: int = 0
    within_slo: int = 0
    first_start: datetime | None = None
    last_end: datetime | None = None
    lateness_ms: list[float] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> None:
        if row["is_warmup"] or row["status"] == "cancelled":
            return
        self.measured += 1
        start, end = row["started_at"], row["ended_at"]
        self.first_start = start if self.first_start is None else min(self.first_start, start)
        self.last_end = end if self.last_end is None else max(self.last_end, end)
        if row.get("send_lateness_ms") is not None:
            self.lateness_ms.append(row["send_lateness_ms"])
        if row["status"] != "ok":
            return
        self.successes += 1
        if self._within(row):
            self.within_slo += 1

    def _within(self, row: dict[str, Any]) -> bool:
        slo = self.slo
        if slo.ttft_ms is not None and (row["ttft_ms"] is None or row["ttft_ms"] > slo.ttft_ms):
            return False
        if slo.e2e_latency_ms is not None and row["e2e_latency_ms"] > slo.e2e_latency_ms:
            return False
        if slo.tpot_ms is None:
            return True
        tokens = row.get("completion_tokens_server")
        if tokens is None and self.counter is not None:
            tokens = self.counter.count_completion(row.get("completion_text") or "")
        if tokens and tokens > 1 and row["ttft_ms"] is not None and row["ttlt_ms"] is not None:
            return bool((row["ttlt_ms"] - row["ttft_ms"]) / (tokens - 1) <= slo.tpot_ms)
        return True

    @property
    def requests_per_s(self) -> float | None:
        if self.first_start is None or self.last_end is None:
            return None
        window = (self.last_end - self.first_start).total_seconds()
        return self.successes / window if window > 0 else None

    @property
    def slo_attainment(self) -> float | None:
        has_slo = any(v is not None for v in (self.slo.ttft_ms, self.slo.tpot_ms, self.slo.e2e_latency_ms))
        return self.within_slo / self.measured if has_slo and self.measured else None

    @property
    def lateness_p99_ms(self) -> float | None:
        if not self.lateness_ms:
            return None
        ordered = sorted(self.lateness_ms)
        return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


@dataclass
class Sweep:
    """The curves of a run (config experiment x payload file) and where each stopped rising."""

    _last: dict[tuple[str, str], float | None] = field(default_factory=dict)
    stopped: dict[tuple[str, str], str] = field(default_factory=dict)
    skipped: dict[Cell, str] = field(default_factory=dict)  # the cells left out, and why

    def observe(self, curve: tuple[str, str], meter: LevelMeter, load: Load) -> str | None:
        """Take a finished level into account; the reason the curve stops here, if it does."""
        seen = curve in self._last
        previous = self._last.get(curve)
        now = meter.requests_per_s
        self._last[curve] = now
        reason = None
        attainment = meter.slo_attainment
        late = meter.lateness_p99_ms
        if attainment is not None and attainment < load.knee_min_slo_attainment:
            reason = "slo_broken"
        elif late is not None and late > load.lateness_threshold_ms:
            reason = "client_behind"
        elif seen and previous is not None and (now is None or now < previous * (1 + load.knee_min_throughput_gain)):
            reason = "throughput_flat"
        if reason is not None and load.stop_past_knee:
            self.stopped[curve] = reason
        return reason
