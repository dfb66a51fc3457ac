"""Upper bounds on config values, checked when a config is loaded.

Every bound is here, with what limits it, so that `fmb config check` refuses a value that
would crash or exhaust the client machine instead of benchmarking the endpoint. The
bounds are generous: a real benchmark stays far below each of them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """An upper bound and, for the error message, what limits it."""

    value: int | float
    why: str

    def check(self, value: int | float, unit: str = "") -> int | float:
        """``value`` if within the bound, else a ValueError that names the bound and its reason."""
        if value > self.value:
            shown, limit = _number(value), _number(self.value)
            raise ValueError(f"{shown}{unit} is more than the limit of {limit}{unit}: {self.why}")
        return value


def _number(value: int | float) -> str:
    """1,000,000 and 7,200.5, but 3,601 for 3601.0 (and 1e+300 for what has no place in prose)."""
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1e15:
        return f"{value:g}"
    return f"{value:,.0f}" if value.is_integer() else f"{value:,}"


# Each request in flight holds an open socket (one file descriptor; the usual soft limit is
# 1024 to 65536 per process), its buffers and a task on the collector's one event loop.
CONCURRENCY = Limit(
    4096,
    "each request in flight holds an open socket (a file descriptor) and memory for its response; "
    "beyond this the client machine, not the endpoint, is what gets measured",
)
# Rounds per cell (FMBench's min/max_iters_per_combination); a round is one request per slot.
ITERS_PER_COMBINATION = Limit(100_000, "a cell this long runs for days; use fewer rounds and more prompts")
# Requests that every cell sends at least (concurrency x min_iters_per_combination): a cell
# keeps its latencies in memory for the progress display and its summary.
REQUESTS_PER_CELL = Limit(
    1_000_000, "a cell keeps every request's latency in memory, and at 1,000 requests/s it runs for 17 minutes"
)
# Open loop: the schedule of a level (one arrival time per request) is computed before it starts.
REQUEST_RATE = Limit(
    100_000, "one collector process sends a few thousand requests/s at most; beyond that the client is measured"
)
CELL_DURATION_S = Limit(86_400, "a load level that runs for more than a day holds its arrival schedule in memory")
# Warm-up requests are sent before each cell and not measured.
WARMUP_REQUESTS = Limit(10_000, "warm-up requests are not measured, more only adds time before each cell")
# A request slower than this is recorded as a timeout; a cell ends only when its last request does.
REQUEST_TIMEOUT_S = Limit(3600, "a request that takes longer than an hour holds its cell open; it is a stuck endpoint")
# How long fmb waits for a deployment or a local server to answer.
DEPLOY_TIMEOUT_S = Limit(86_400, "fmb waits at most a day for an endpoint to come up")
# The first wait before a retry; it doubles each time, and no wait is longer than 30 s.
RETRY_BACKOFF_S = Limit(30, "waits between retries never exceed 30 s")
# Tries per request when the endpoint throttles.
ATTEMPTS = Limit(20, "with the doubling wait, 20 tries already span about 10 minutes")
# Prompt lengths and context sizes, in tokens.
TOKENS = Limit(10_000_000, "no model's context window is that long")
# Threads of a local llama.cpp server.
THREADS = Limit(4096, "more threads than any machine has cores")
# Records of the built-in synthetic datasets, held in memory while prompts are counted.
SYNTHETIC_RECORDS = Limit(1_000_000, "the records are generated and held in memory")
# Words generated for synthetic:longbench (records x max_context_words) or synthetic:exact-lengths
# (prompts_per_filter x the filters' upper bounds); about 7 bytes a word, all held in memory.
SYNTHETIC_WORDS = Limit(50_000_000, "the generated text (about 7 bytes a word) is held in memory")
# Whole numbers are written to 64-bit integer columns.
INTEGER = Limit(2**63 - 1, "numbers are stored as 64-bit integers")
# File and folder names: most file systems allow 255 bytes; fmb adds prefixes such as
# `experiment=` and suffixes such as `.tmp` to the names it derives.
FILE_NAME_BYTES = Limit(255, "file systems allow at most 255 bytes in a file name")
FOLDER_NAME_CHARS = Limit(
    200, "the name becomes a results folder (percent-encoded, with a prefix) and file names are at most 255 bytes"
)
# Values in the whole config document after YAML aliases are expanded.
CONFIG_VALUES = Limit(100_000, "a config this large is almost certainly YAML aliases expanding without end")
