"""What the client adds to the times it measures: fmb (and inference-perf, when installed) side by side.

Starts a lean streaming OpenAI-compatible server in its own process that logs its own
times per request (when the request was read, when the first content chunk was written,
when the response ended), then drives ``fmb collect``'s own code (``collect()``: the
targets, the runner, the row maker, the Parquet writer and its journal, on the event loop
the CLI uses) against it, one run per concurrency level. Each client-measured time is
matched to the server's record of the same request, and the difference is the client's
own overhead plus the loopback network:

    ΔTTFT = client TTFT - (first content chunk written - request read), per request
    ΔE2E  = client E2E  - (response ended             - request read), per request

It prints p50 and p99 of both per concurrency level, the client's CPU time per request
(the process's user and system time, all its threads and children, less the CPU of a
one-request run, which is start-up and not per request), and the maximum sustained rate
against a zero-delay server (every chunk written at once), with the CPU per request there.

When inference-perf is installed (importable here, or ``--inference-perf PATH`` names its
command, e.g. from a Python 3.12 virtual environment) it runs the same cells through it:
its concurrent load type, one process per level, CPU counted the same way (its start-up
run subtracted).

    python bench/side_by_side.py                       # c = 1 8 32 128 256 512, about 3 minutes
    python bench/side_by_side.py -c 32 -c 128 --seconds 4 --max-rate-requests 4000
    python bench/side_by_side.py --inference-perf /tmp/ip-venv/bin/inference-perf

The server runs on this machine's CPUs too: on a small machine the two compete, so the
figures are for comparing clients (and changes to one), not absolute. ``--serve`` runs
only the server (for other clients).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import dedent
from typing import Any, cast

# --- the server ---------------------------------------------------------------------------

_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")
# The user's text in a chat or completions body: the key that matches a request to its record.
_PROMPT = re.compile(rb'"(?:content|prompt)"\s*:\s*"((?:[^"\\]|\\.)*)"')
_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def _frame(payload: dict[str, Any] | str) -> bytes:
    """One SSE event as one chunk of the chunked transfer encoding."""
    data = b"data: " + (payload if isinstance(payload, str) else json.dumps(payload)).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


@dataclass
class Frames:
    """The response's bytes, built once: the server only writes them."""

    head: bytes
    token: bytes
    tail: bytes

    @classmethod
    def build(cls, chat: bool, tokens: int) -> Frames:
        base = {"id": "bench", "object": "chat.completion.chunk" if chat else "text_completion", "model": "bench"}

        def choice(text: str, finish: str | None) -> dict[str, Any]:
            if chat:
                return {"index": 0, "delta": {"content": text}, "finish_reason": finish}
            return {"index": 0, "text": text, "finish_reason": finish}

        role = _frame(base | {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
        usage = {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1}
        tail = (
            _frame(base | {"choices": [choice("", "length")]})
            + _frame(base | {"choices": [], "usage": usage})
            + _frame("[DONE]")
            + b"0\r\n\r\n"
        )
        return cls(_HEAD + (role if chat else b""), _frame(base | {"choices": [choice(" tok", None)]}), tail)


class _Server:
    def __init__(self, ttft_s: float, itl_s: float, tokens: int) -> None:
        self.ttft_s, self.itl_s, self.tokens = ttft_s, itl_s, tokens
        self.frames = {True: Frames.build(True, tokens), False: Frames.build(False, tokens)}
        # key, wall-clock ns when read, then monotonic ns: read, first content chunk written, ended
        self.log: list[tuple[bytes, int, int, int, int]] = []


class _Connection(asyncio.Protocol):
    def __init__(self, server: _Server) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            match = _CONTENT_LENGTH.search(self.buffer, 0, end + 2)
            total = end + 4 + (int(match.group(1)) if match else 0)
            if len(self.buffer) < total:
                return
            head, body, self.buffer = self.buffer[:end], self.buffer[end + 4 : total], self.buffer[total:]
            self.request(head, body)

    def reply(self, status: str, body: bytes) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (status.encode(), len(body), body)
        )

    def request(self, head: bytes, body: bytes) -> None:
        received_ns, received_wall_ns = time.perf_counter_ns(), time.time_ns()
        line = head.split(b"\r\n", 1)[0]
        if line.startswith(b"GET /log"):  # the records so far, and the server's CPU time; then a fresh log
            server = self.server
            records, server.log = server.log, []
            cpu = time.process_time()
            text = [[k.decode("utf-8", "replace"), w, r, f, e] for k, w, r, f, e in records]
            self.reply("200 OK", json.dumps({"cpu_s": cpu, "records": text}).encode())
            return
        if not line.startswith(b"POST "):
            self.reply("404 Not Found", b'{"error": "not found"}')
            return
        match = _PROMPT.search(body)
        key = match.group(1) if match else b""
        frames = self.server.frames[b"chat" in line]
        transport = self.transport
        assert transport is not None
        server = self.server
        if server.ttft_s <= 0 and server.itl_s <= 0:
            transport.write(frames.head + frames.token * server.tokens + frames.tail)
            now = time.perf_counter_ns()
            server.log.append((key, received_wall_ns, received_ns, now, now))
            return
        transport.write(frames.head)
        start = self.loop.time()
        state = [0]  # the first content chunk's time
        tokens = server.tokens

        def emit(i: int) -> None:
            if self.transport is None:
                return
            if i == tokens - 1:
                self.transport.write(frames.token + frames.tail)
                now = time.perf_counter_ns()
                server.log.append((key, received_wall_ns, received_ns, state[0] or now, now))
                return
            self.transport.write(frames.token)
            if i == 0:
                state[0] = time.perf_counter_ns()
            self.loop.call_at(start + server.ttft_s + (i + 1) * server.itl_s, emit, i + 1)

        self.loop.call_at(start + server.ttft_s, emit, 0)


def serve(port: int, ttft_ms: float, itl_ms: float, tokens: int, uvloop: bool = False) -> None:
    """Serve until killed; print the URL once listening. asyncio's own event loop unless ``uvloop``
    (the same server for every client and every version of fmb, whichever loop fmb uses)."""
    loop_factory = None
    if uvloop:
        import uvloop as uv

        loop_factory = uv.new_event_loop

    async def main() -> None:
        server = _Server(ttft_ms / 1000, itl_ms / 1000, tokens)
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(lambda: _Connection(server), "127.0.0.1", port, backlog=4096)
        bound = listener.sockets[0].getsockname()[1]
        print(f"listening on http://127.0.0.1:{bound}", flush=True)
        await asyncio.Event().wait()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


@contextmanager
def server_process(ttft_ms: float, itl_ms: float, tokens: int, uvloop: bool = False) -> Iterator[str]:
    """The server in a child process; yields its base URL."""
    args = [sys.executable, __file__, "--serve", "--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms)]
    args += ["--server-uvloop"] if uvloop else []
    proc = subprocess.Popen([*args, "--tokens", str(tokens)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on (\S+)", line)
        if not match:
            raise RuntimeError(f"the bench server did not start: {line!r}")
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def fetch_log(url: str) -> tuple[float, list[list[Any]]]:
    with urllib.request.urlopen(f"{url}/log", timeout=60) as response:
        data = json.loads(response.read())
    return data["cpu_s"], data["records"]


# --- measuring ------------------------------------------------------------------------------


def cpu_s() -> float:
    """This process's CPU time (all threads) and that of its finished children, in seconds."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Sample:
    """One request as the client saw it: its key, when it started (ns, any clock), its TTFT and E2E (ms)."""

    key: str
    started_ns: int
    ttft_ms: float | None
    e2e_ms: float
    warmup: bool = False


@dataclass
class Result:
    client: str
    concurrency: int
    requests: int  # measured requests (not warm-ups) that succeeded
    sent: int  # every request sent, warm-ups included
    cpu_ms_per_request: float
    wall_s: float
    d_ttft: list[float] = field(default_factory=list)
    d_e2e: list[float] = field(default_factory=list)
    unmatched: int = 0
    server_cpu_ms_per_request: float | None = None
    rate: float | None = None  # measured requests per second, from the first start to the last end
    mean_e2e_ms: float | None = None  # client-measured, of the measured requests

    @property
    def in_flight(self) -> float | None:
        """Requests in flight on average (Little's law): the concurrency the client really kept up."""
        return self.rate * self.mean_e2e_ms / 1000 if self.rate and self.mean_e2e_ms else None


def match(samples: list[Sample], records: list[list[Any]], clock: str) -> tuple[list[float], list[float], int]:
    """ΔTTFT and ΔE2E of the measured samples; each matched to the server record of its key nearest in time.

    ``clock`` says which server stamp a sample's ``started_ns`` compares with: "wall" or "monotonic".
    A prompt recurs only after thousands of requests, so the nearest record of its key is its own."""
    by_key: dict[str, list[list[Any]]] = defaultdict(list)
    for record in records:
        by_key[record[0]].append(record)
    at = 1 if clock == "wall" else 2
    d_ttft, d_e2e, unmatched = [], [], 0
    for sample in samples:
        candidates = by_key.get(sample.key)
        if not candidates:
            unmatched += not sample.warmup
            continue
        record = min(candidates, key=lambda r: abs(r[at] - sample.started_ns))
        candidates.remove(record)
        if sample.warmup:
            continue
        _, _, received, first, ended = record
        if sample.ttft_ms is not None:
            d_ttft.append(sample.ttft_ms - (first - received) / 1e6)
        d_e2e.append(sample.e2e_ms - (ended - received) / 1e6)
    return d_ttft, d_e2e, unmatched


def quantile(values: list[float], q: float) -> float:
    """Exact, interpolated (as DuckDB's quantile_cont)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# --- fmb --------------------------------------------------------------------------------------

PROMPTS = 4096  # distinct prompts, cycled: a prompt recurs only after this many requests
BENCHMARK = "side-by-side"


def prompt_text(i: int) -> str:
    return f"bench prompt {i:05d} " + "lorem ipsum dolor sit amet " * 8


CONFIG = """
general: {{name: {name}, model_name: bench}}
s3_read_data: {{source_data_files: ["synthetic:exact-lengths"]}}
datasets:
  {tokenizer}
  prompt_template_keys: [input]
  min_iters_per_combination: {rounds}
  max_iters_per_combination: {rounds}
  filters:
  - {{language: en, min_length_in_tokens: 1, max_length_in_tokens: 100000, payload_file: bench.jsonl}}
inference_parameters:
  chat: {{max_tokens: {tokens}}}
experiments:
- name: bench
  api: openai-chat
  endpoint_url: {url}/v1
  instance_type: local.cpu
  stream: true
  request_timeout_s: 120
  warmup_requests: {warmup}
  inference_spec: {{parameter_set: chat}}
  payload_files: [bench.jsonl]
  concurrency_levels: [{concurrency}]
telemetry: {{server_metrics: false}}
"""


class Fmb:
    """Runs `fmb collect`'s collect() in this process, one run per cell, into one results folder."""

    def __init__(self, folder: Path, tokenizer: Path | None) -> None:
        from fmb.paths import ResultsLayout
        from fmb.prepare.payloads import prompt_id

        self.folder = folder
        self.layout = ResultsLayout(folder / "results")
        self.tokenizer = tokenizer.resolve() if tokenizer else None
        payloads = self.layout.payload_dir(BENCHMARK)
        payloads.mkdir(parents=True, exist_ok=True)
        texts = [prompt_text(i) for i in range(PROMPTS)]
        with open(payloads / "bench.jsonl", "w", encoding="utf-8") as handle:
            for text in texts:
                handle.write(json.dumps({"inputs": text}) + "\n")
        self.keys = {prompt_id(t): t for t in texts}
        self.fixed_cpu_s = 0.0
        self.processes = 1

    def run(self, url: str, concurrency: int, rounds: int, tokens: int, warmup: int) -> tuple[float, float, Any]:
        """One collect() of one cell (with ``self.processes`` collector processes, as `fmb collect --processes`);
        returns its CPU seconds (the processes' too), wall seconds and the requests table."""
        import pyarrow.dataset as ds

        from fmb.collector.collect import collect
        from fmb.config import load_config
        from fmb.endpoints import resolve_endpoints

        tokenizer = f"tokenizer: {self.tokenizer}" if self.tokenizer else ""
        config = self.folder / "config.yml"
        config.write_text(
            dedent(CONFIG).format(
                name=BENCHMARK,
                tokenizer=tokenizer,
                rounds=rounds,
                tokens=tokens,
                url=url,
                warmup=warmup,
                concurrency=concurrency,
            ),
            encoding="utf-8",
        )
        loaded = load_config(config, results_dir=self.layout.root)
        endpoints = resolve_endpoints(loaded, self.layout, ())
        cpu, wall = cpu_s(), time.perf_counter()
        if self.processes > 1:
            from fmb.collector.team import collect_in_processes

            result = collect_in_processes(loaded, self.layout, endpoints, self.processes, quiet=True)
        else:
            result = collect(loaded, self.layout, endpoints, quiet=True)
        cpu, wall = cpu_s() - cpu, time.perf_counter() - wall
        if result.status != "completed":
            raise RuntimeError(f"fmb collect ended {result.status}: {result.message}")
        folder = self.layout.requests_dir("bench", result.run_id)
        return cpu, wall, ds.dataset(sorted(folder.glob("part-*.parquet")), format="parquet").to_table()

    def calibrate(self, url: str, tokens: int, processes: int = 1) -> None:
        """The CPU of a run of one request: start-up, not per request (also warms up imports and caches)."""
        self.processes = processes
        concurrency = processes  # one request from each process
        self.run(url, concurrency, 1, tokens, 0)
        cpus = [self.run(url, concurrency, 1, tokens, 0)[0] for _ in range(3)]
        self.fixed_cpu_s = statistics.median(cpus)

    def cell(self, url: str, concurrency: int, rounds: int, tokens: int) -> Result:
        server_cpu, _ = fetch_log(url)
        cpu, wall, table = self.run(url, concurrency, rounds, tokens, warmup=concurrency)
        server_cpu_after, records = fetch_log(url)
        result = self.result(table.to_pylist(), records, concurrency, cpu, wall)
        result.server_cpu_ms_per_request = (server_cpu_after - server_cpu) * 1000 / max(result.sent, 1)
        return result

    def result(
        self, rows: list[dict[str, Any]], records: list[list[Any]], concurrency: int, cpu: float, wall: float
    ) -> Result:
        samples = [
            Sample(
                self.keys[r["prompt_id"]],
                int(r["started_at"].timestamp() * 1e9),
                r["ttft_ms"],
                r["e2e_latency_ms"],
                r["is_warmup"],
            )
            for r in rows
            if r["status"] == "ok"
        ]
        d_ttft, d_e2e, unmatched = match(samples, records, "wall")
        measured = [r for r in rows if not r["is_warmup"] and r["status"] == "ok"]
        window = (max(r["ended_at"] for r in measured) - min(r["started_at"] for r in measured)).total_seconds()
        return Result(
            "fmb" if self.processes == 1 else f"fmb x{self.processes}",
            concurrency,
            len(measured),
            len(rows),
            max(cpu - self.fixed_cpu_s, 0.0) * 1000 / len(rows),
            wall,
            d_ttft,
            d_e2e,
            unmatched,
            rate=len(measured) / window if window > 0 else None,
            mean_e2e_ms=statistics.fmean(r["e2e_latency_ms"] for r in measured),
        )


# --- inference-perf ----------------------------------------------------------------------------

IP_CONFIG = """
api: {{type: chat, streaming: true}}
data: {{type: mock}}
load:
  type: concurrent
  stages: [{{num_requests: {requests}, concurrency_level: {concurrency}}}]
  num_workers: {workers}
  worker_max_concurrency: {per_worker}
server: {{type: vllm, model_name: bench, base_url: "{url}", ignore_eos: true}}
report:
  request_lifecycle:
    summary: true
    per_stage: false
    per_request: true
    per_request_fields: {{request: true, response: false, info: true, response_chunks: false}}
storage: {{local_storage: {{path: "{out}"}}}}
{tokenizer}
"""


def inference_perf_command(given: str | None) -> list[str] | None:
    """How to run inference-perf: the given command, else this Python's module, else one on PATH."""
    if given:
        return [given]
    try:
        import inference_perf  # noqa: F401

        return [sys.executable, "-m", "inference_perf.main"]
    except ImportError:
        found = shutil.which("inference-perf")
        return [found] if found else None


class InferencePerf:
    def __init__(self, command: list[str], folder: Path, workers: int, tokenizer: Path | None) -> None:
        self.command = command
        # A folder holding tokenizer.json (and config.json), read offline.
        self.tokenizer = f'tokenizer: {{pretrained_model_name_or_path: "{tokenizer.parent}"}}' if tokenizer else ""
        self.folder = folder
        self.workers = workers
        self.fixed_cpu_s = 0.0
        self.runs = 0

    def run(self, url: str, concurrency: int, requests: int) -> tuple[float, float, list[dict[str, Any]]]:
        self.runs += 1
        out = self.folder / f"ip-{self.runs}"
        config = self.folder / f"ip-{self.runs}.yml"
        workers = min(self.workers, concurrency)
        config.write_text(
            dedent(IP_CONFIG).format(
                requests=requests,
                concurrency=concurrency,
                workers=workers,
                per_worker=math.ceil(concurrency / workers),
                url=url,
                out=out,
                tokenizer=self.tokenizer,
            ),
            encoding="utf-8",
        )
        cpu, wall = cpu_s(), time.perf_counter()
        done = subprocess.run(
            [*self.command, "--config_file", str(config), "--log-level", "WARNING"],
            capture_output=True,
            text=True,
            cwd=self.folder,
            env=os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        )
        cpu, wall = cpu_s() - cpu, time.perf_counter() - wall
        found = list(out.rglob("*per_request*.json"))
        if done.returncode or not found:
            raise RuntimeError(
                f"inference-perf failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
            )
        return cpu, wall, json.loads(found[0].read_text())

    def calibrate(self, url: str) -> None:
        self.fixed_cpu_s = statistics.median(self.run(url, 1, 1)[0] for _ in range(2))

    def cell(self, url: str, concurrency: int, requests: int) -> Result:
        server_cpu, _ = fetch_log(url)
        cpu, wall, rows = self.run(url, concurrency, requests)
        server_cpu_after, records = fetch_log(url)
        samples, starts, ends = [], [], []
        for row in rows:
            if row.get("error"):
                continue
            found = _PROMPT.search(row["request"].encode())
            times = ((row["info"].get("response_metrics") or {}).get("chunk_times")) or []
            start, end = row["start_time"], row["end_time"]
            samples.append(
                Sample(
                    found.group(1).decode() if found else "",
                    int(start * 1e9),
                    (times[0] - start) * 1000 if times else None,
                    (end - start) * 1000,
                )
            )
            starts.append(start)
            ends.append(end)
        d_ttft, d_e2e, unmatched = match(samples, records, "monotonic")
        window = max(ends) - min(starts) if samples else 0
        return Result(
            "inference-perf",
            concurrency,
            len(samples),
            len(rows),
            max(cpu - self.fixed_cpu_s, 0.0) * 1000 / max(len(rows), 1),
            wall,
            d_ttft,
            d_e2e,
            unmatched,
            (server_cpu_after - server_cpu) * 1000 / max(len(rows), 1),
            rate=len(samples) / window if window > 0 else None,
            mean_e2e_ms=statistics.fmean(s.e2e_ms for s in samples) if samples else None,
        )


# --- the report ----------------------------------------------------------------------------------


def _ms(value: float | None, width: int = 7) -> str:
    return f"{value:{width}.2f}" if value is not None and not math.isnan(value) else " " * (width - 1) + "-"


HEADER = (
    "client          c  requests  in flight  requests/s  ΔTTFT p50    p99  ΔE2E p50    p99  CPU ms/req"
    "  server CPU ms/req  unmatched"
)


def line(r: Result) -> str:
    return (
        f"{r.client:14} {r.concurrency:3} {r.requests:9} {_ms(r.in_flight, 10)} {_ms(r.rate, 11)}"
        f" {_ms(quantile(r.d_ttft, 0.5), 10)} {_ms(quantile(r.d_ttft, 0.99))}"
        f" {_ms(quantile(r.d_e2e, 0.5), 9)} {_ms(quantile(r.d_e2e, 0.99))} {_ms(r.cpu_ms_per_request, 11)}"
        f" {_ms(r.server_cpu_ms_per_request, 18)} {r.unmatched:10}"
    )


RATE_HEADER = "client          c  requests  in flight  requests/s  CPU ms/req  server CPU ms/req  ΔE2E p50    p99"


def rate_line(r: Result) -> str:
    return (
        f"{r.client:14} {r.concurrency:3} {r.requests:9} {_ms(r.in_flight, 10)} {_ms(r.rate, 11)}"
        f" {_ms(r.cpu_ms_per_request, 11)}"
        f" {_ms(r.server_cpu_ms_per_request, 18)} {_ms(quantile(r.d_e2e, 0.5), 9)} {_ms(quantile(r.d_e2e, 0.99))}"
    )


def goals(streamed: dict[int, Result], rates: list[Result]) -> list[str]:
    """Issue 15's client goals, from fmb's figures."""
    out = []

    def check(name: str, value: float | None, limit: float) -> None:
        if value is None or math.isnan(value):
            out.append(f"  {name}: not measured (limit {limit:g})")
        else:
            out.append(f"  {name}: {value:.2f} (limit {limit:g}) {'ok' if value <= limit else 'MISSED'}")

    def of(c: int, get: Callable[[Result], float]) -> float | None:
        return get(streamed[c]) if c in streamed else None

    check("median ΔTTFT at c=32 (ms)", of(32, lambda r: quantile(r.d_ttft, 0.5)), 0.4)
    check("median ΔTTFT at c=256 (ms)", of(256, lambda r: quantile(r.d_ttft, 0.5)), 2)
    check("ΔE2E p99 at c=128 (ms)", of(128, lambda r: quantile(r.d_e2e, 0.99)), 5)
    check("CPU per 64-token stream at c=32 (ms)", of(32, lambda r: r.cpu_ms_per_request), 2)
    best = max(rates, key=lambda r: r.rate or 0, default=None)
    check("CPU per request at the maximum rate, zero-delay server (ms)", best.cpu_ms_per_request if best else None, 0.4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--concurrency", type=int, action="append", help="levels (default 1 8 32 128 256 512)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per response (default 64)")
    parser.add_argument("--ttft-ms", type=float, default=40.0)
    parser.add_argument("--itl-ms", type=float, default=5.0, help="time per token after the first (default 5 ms)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per level (default 8)")
    parser.add_argument("--min-requests", type=int, default=50, help="measured requests per level at least")
    parser.add_argument(
        "--max-rate-concurrency", type=int, action="append", help="levels against the zero-delay server (default 64)"
    )
    parser.add_argument("--max-rate-requests", type=int, default=10000, help="requests per zero-delay level")
    parser.add_argument(
        "-p",
        "--processes",
        type=int,
        action="append",
        help="fmb's collector processes at the maximum rate (fmb collect --processes; default 1 2)",
    )
    parser.add_argument("--no-streams", action="store_true", help="only the maximum rate")
    parser.add_argument("--no-max-rate", action="store_true", help="only the delayed streams")
    parser.add_argument("--tokenizer", type=Path, help="a tokenizer.json for fmb's token counts (default: the tests')")
    parser.add_argument("--inference-perf", metavar="COMMAND", help="inference-perf's command (default: if installed)")
    parser.add_argument("--no-inference-perf", action="store_true")
    parser.add_argument("--ip-workers", type=int, default=1, help="inference-perf's worker processes (default 1)")
    parser.add_argument("--serve", action="store_true", help="only run the server (prints its URL)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--server-uvloop", action="store_true", help="the server on uvloop (default: asyncio's loop)")
    args = parser.parse_args()
    if args.serve:
        serve(args.port, args.ttft_ms, args.itl_ms, args.tokens, args.server_uvloop)
        return
    levels = args.concurrency or [1, 8, 32, 128, 256, 512]
    rate_levels = args.max_rate_concurrency or [64]
    tokenizer = args.tokenizer
    default_tokenizer = Path(__file__).parent.parent / "tests/fixtures/tokenizers/mistral-7b/tokenizer.json"
    if tokenizer is None and default_tokenizer.is_file():
        tokenizer = default_tokenizer
    ip_command = None if args.no_inference_perf else inference_perf_command(args.inference_perf)
    try:
        from fmb.collector.event_loop import loop_factory

        loop = "uvloop" if loop_factory() else "asyncio"
    except ImportError:  # an fmb from before fmb.collector.event_loop
        loop = "asyncio"
    print(
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, fmb's event loop: {loop}; "
        f"server ({'uvloop' if args.server_uvloop else 'asyncio'}): {args.tokens} tokens, "
        f"TTFT {args.ttft_ms:g} ms, {args.itl_ms:g} ms per token; fmb's tokenizer: {tokenizer or 'word rule'}",
        flush=True,
    )
    if ip_command is None:
        print("inference-perf is not installed (or give --inference-perf COMMAND): fmb only.", flush=True)
    latency_s = (args.ttft_ms + (args.tokens - 1) * args.itl_ms) / 1000
    streamed: dict[str, dict[int, Result]] = defaultdict(dict)
    rates: dict[str, list[Result]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="fmb-side-by-side-") as tmp:
        folder = Path(tmp)
        fmb = Fmb(folder, tokenizer)
        ip = InferencePerf(ip_command, folder, args.ip_workers, tokenizer) if ip_command else None
        if not args.no_streams:
            with server_process(args.ttft_ms, args.itl_ms, args.tokens, args.server_uvloop) as url:
                fmb.calibrate(url, args.tokens)
                if ip:
                    ip.calibrate(url)
                print(f"\nStreams ({args.tokens} tokens, TTFT {args.ttft_ms:g} ms, {args.itl_ms:g} ms/token)")
                print(HEADER, flush=True)
                for c in levels:
                    rounds = max(math.ceil(args.seconds / latency_s), math.ceil(args.min_requests / c))
                    result = fmb.cell(url, c, rounds, args.tokens)
                    streamed["fmb"][c] = result
                    print(line(result), flush=True)
                    if ip:
                        result = ip.cell(url, c, c * (rounds + 1))
                        streamed["inference-perf"][c] = result
                        print(line(result), flush=True)
        if not args.no_max_rate:
            with server_process(0, 0, args.tokens, args.server_uvloop) as url:
                if ip:
                    ip.calibrate(url)
                print(f"\nMaximum rate (zero-delay server, {args.tokens} tokens written at once)")
                print(RATE_HEADER, flush=True)
                for c in rate_levels:
                    rounds = max(math.ceil(args.max_rate_requests / c), 1)
                    for processes in args.processes or [1, 2]:
                        fmb.calibrate(url, args.tokens, processes)
                        result = fmb.cell(url, c, rounds, args.tokens)
                        rates["fmb" if processes == 1 else "fmb-processes"].append(result)
                        print(rate_line(result), flush=True)
                    if ip:
                        result = ip.cell(url, c, c * (rounds + 1))
                        rates["inference-perf"].append(result)
                        print(rate_line(result), flush=True)
    print("\nfmb against issue 15's goals (on a quiet 2-core machine; this one may be busy):")
    print("\n".join(goals(streamed["fmb"], rates["fmb"])))
    for one in rates["fmb"]:
        for more in (r for r in rates["fmb-processes"] if r.concurrency == one.concurrency):
            print(
                f"  {more.client} at c={more.concurrency}: {_ms(more.rate, 0).strip()} requests/s against "
                f"{_ms(one.rate, 0).strip()} with one process, {_ms(more.cpu_ms_per_request, 0).strip()} ms CPU each "
                f"against {_ms(one.cpu_ms_per_request, 0).strip()} (the server shares these cores)"
            )


if __name__ == "__main__":
    main()
