"""Arrival schedules of open-loop load: when each request of a load level is due.

A schedule is computed before its level starts, from a seed, so the same config sends
its requests at the same offsets every time, whatever the server does meanwhile (open
loop: a slow server does not slow the arrivals down, it only makes requests overlap).

* ``constant``: one request every ``1 / rate`` seconds.
* ``poisson``: exponential gaps of mean ``1 / rate`` (a Poisson process).
* ``gamma``: gamma-distributed gaps of mean ``1 / rate`` and shape ``burstiness``: 1 is
  Poisson, smaller is burstier (coefficient of variation ``1 / sqrt(burstiness)``).

A ramp-up of ``R`` seconds raises the rate linearly from 0 to ``rate`` first. The gaps are
drawn at the full rate and mapped through the ramp's cumulative rate
``rate * t**2 / (2 R)`` (the time-rescaling of an inhomogeneous process), so the same
seed gives the same arrivals after the ramp as without it, only later. Arrivals during
the ramp are the level's warm-ups.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmb.errors import CollectError


@dataclass(frozen=True)
class Schedule:
    """The due offsets (seconds from the level's start) of its warm-ups, then its measured requests."""

    offsets: tuple[float, ...]
    warmup: int
    # Trace replay: each request's input and output lengths (tokens) from the trace, where it gave them.
    input_lengths: tuple[int | None, ...] | None = None
    output_lengths: tuple[int | None, ...] | None = None

    @property
    def requests(self) -> int:
        return len(self.offsets) - self.warmup


def level_seed(seed: int, *parts: object) -> int:
    """A seed of its own for each level (experiment, payload file, rate), derived from the config's seed."""
    text = json.dumps([seed, *[str(p) for p in parts]])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _gaps(mode: str, rate: float, burstiness: float, rng: random.Random) -> Any:
    """Endless gaps (seconds at the full rate) between arrivals."""
    while True:
        if mode == "constant":
            yield 1.0 / rate
        elif mode == "poisson":
            yield rng.expovariate(rate)
        else:  # gamma: mean shape * scale = 1 / rate
            yield rng.gammavariate(burstiness, 1.0 / (rate * burstiness))


def _ramped(t: float, rate: float, ramp_s: float) -> float:
    """The wall offset at which the full-rate process's time ``t`` arrives with a linear ramp-up."""
    if ramp_s <= 0:
        return t
    # Cumulative rate: rate * u**2 / (2 R) for u < R, then rate * R / 2 + rate * (u - R).
    area = rate * t  # arrivals expected by t at the full rate
    if area < rate * ramp_s / 2:
        return math.sqrt(2 * ramp_s * area / rate)
    return ramp_s + (area - rate * ramp_s / 2) / rate


def open_loop(
    mode: str,
    rate: float,
    *,
    seed: int,
    burstiness: float = 1.0,
    requests: int | None = None,
    duration_s: float | None = None,
    ramp_up_s: float = 0.0,
) -> Schedule:
    """The schedule of one level: ``requests`` measured arrivals, or those due within ``duration_s`` after the ramp."""
    if (requests is None) == (duration_s is None):
        raise ValueError("give requests or duration_s")
    rng = random.Random(seed)
    offsets: list[float] = []
    warmup = 0
    t = 0.0
    for gap in _gaps(mode, rate, burstiness, rng):
        t += gap
        due = _ramped(t, rate, ramp_up_s)
        if due < ramp_up_s:
            warmup += 1
        else:
            enough = requests is not None and len(offsets) - warmup >= requests
            if enough or (duration_s is not None and due >= ramp_up_s + duration_s):
                break
        offsets.append(due)
    return Schedule(tuple(offsets), warmup)


@dataclass(frozen=True)
class TraceRequest:
    offset_s: float
    input_length: int | None
    output_length: int | None = None


def read_trace(path: Path) -> list[TraceRequest]:
    """A trace file: JSONL with ``timestamp`` (seconds), optional ``input_length`` and ``output_length`` (tokens).

    Offsets are from the earliest timestamp; lines are sorted by it.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CollectError(
            f"cannot read the trace file {path} ({exc.strerror or exc}).", hint="Check load.trace_file."
        ) from None
    out: list[tuple[float, int | None, int | None]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise CollectError(f"trace file {path} line {number} is not JSON.") from None
        stamp = record.get("timestamp") if isinstance(record, dict) else None
        if isinstance(stamp, bool) or not isinstance(stamp, int | float) or not math.isfinite(stamp):
            raise CollectError(
                f"trace file {path} line {number} has no number under 'timestamp'.",
                hint='Each line is {"timestamp": <seconds>, "input_length": <tokens>, "output_length": <tokens>} '
                "(the lengths optional).",
            )
        lengths = []
        for key, least in (("input_length", 0), ("output_length", 1)):
            length = record.get(key)
            if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < least):
                raise CollectError(
                    f"trace file {path} line {number}: {key!r} must be a whole number of tokens"
                    + (", at least 1." if least else ".")
                )
            lengths.append(length)
        out.append((float(stamp), lengths[0], lengths[1]))
    if not out:
        raise CollectError(f"trace file {path} holds no request.")
    out.sort(key=lambda r: r[0])
    first = out[0][0]
    return [TraceRequest(stamp - first, inputs, outputs) for stamp, inputs, outputs in out]
