"""What the mock endpoint does with a request: exact timings and injected faults.

Token ``i`` (0-based) of a response is released at ``arrival + ttft + i * itl`` on the
event loop's clock. Deadlines are absolute, so a late wake-up never accumulates into the
following tokens. The event loop wakes up to one timer tick (1 ms with epoll) after the
time it was asked for, so the mock asks for half a tick early: release times are then
centred on the deadlines instead of trailing them by half a tick on average. Faults are
drawn per request from a seeded random generator: an HTTP error status, throttling
(429), or a stall (a long pause before the first token or in the middle of the stream).
A request may also name its fate in the
``x-fmb-mock-fault`` header (one of :data:`FAULT_KINDS`), which is how the fault-matrix
tests send every kind of fault to one server.

With ``max_running = N`` at most N requests are served at once; the others
wait in a first-come queue before their clock starts, as in a server whose batch is full.
The counts behind the mock's ``/metrics`` page (:mod:`fmb.collector.mock.metrics`) are kept
here, where the requests are served: requests waiting and running, prompt and generated
tokens, and requests whose generation finished.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class MockSettings:
    ttft_ms: float = 40.0
    itl_ms: float = 5.0
    output_tokens: int = 32
    tokens_per_chunk: int = 1
    error_rate: float = 0.0
    error_status: int = 500
    throttle_rate: float = 0.0
    stall_rate: float = 0.0
    stall_s: float = 30.0
    stream_error_rate: float = 0.0
    stall_at: str = "first"  # "first": before the first token; "middle": halfway through
    seed: int = 0
    model: str = "fmb-mock"
    # Put the request's own headers into the answer (completion text and error bodies), as a
    # careless endpoint may: for tests that fmb masks what an endpoint echoes back.
    echo_headers: bool = False
    # What the generated text is: words (" w0 w1 ..."), echo (the prompt itself, word by word:
    # a candidate whose answer holds whatever the prompt holds), judge (a panel judge's JSON
    # verdict: "correct" exactly when the candidate answer in the prompt contains the ground truth,
    # or one of its comma-separated options), or auto (judge for a judge's prompt, else echo: one
    # server for candidates and judges). echo, judge and auto ignore output_tokens.
    reply: str = "words"
    # A CloudWatch endpoint (e.g. moto's server) that the SageMaker and Bedrock runtimes publish
    # their per-request metrics to, as the real services do (see fmb.collector.mock.aws_runtime).
    cloudwatch_url: str | None = None
    # Requests served at once; the others wait in a queue (0: no limit).
    max_running: int = 0


# What can happen to a request: ok, error (HTTP error status), throttle (429), stall,
# stream_error (an error event halfway through the stream), and broken 200 answers:
# html (a web page), json_body (a plain JSON completion where a stream was asked for),
# done_only (a stream of only `data: [DONE]`), empty_stream (a finish reason and
# [DONE] but no content), truncated (the stream stops halfway without an end marker),
# bad_chunked (invalid chunked transfer encoding halfway), and bare_data (a valid stream
# with a keep-alive comment and a bare `data` line between events, which must read fine).
FAULT_KINDS = (
    "ok",
    "error",
    "throttle",
    "stall",
    "stream_error",
    "html",
    "json_body",
    "done_only",
    "empty_stream",
    "truncated",
    "bad_chunked",
    "bare_data",
)
FAULT_HEADER = "x-fmb-mock-fault"


@dataclass
class Fate:
    """What happens to one request."""

    kind: str  # one of FAULT_KINDS
    tokens: int
    words: list[str] | None = None  # the text to send, word by word (reply echo or judge)


# Fates whose generation stops before the last token.
BROKEN_OFF = ("stream_error", "truncated", "bad_chunked", "empty_stream")

# Half of the event loop's timer tick (epoll waits in whole milliseconds).
HALF_TICK_S = 0.0005


class Behaviour:
    def __init__(self, settings: MockSettings) -> None:
        self.s = settings
        self._rng = random.Random(settings.seed)
        self.requests = 0
        self.completed = 0  # responses written to the end (the last byte handed to the socket)
        # What /metrics shows: requests queued for a slot and being served, and running totals.
        self.waiting = 0
        self.running = 0
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0  # tokens released to the client, counted as they leave
        self.success_total = 0  # requests whose generation released every token of its fate
        self._slots = asyncio.Semaphore(settings.max_running) if settings.max_running > 0 else None

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Hold one of the ``max_running`` slots while a request is served; wait in the queue for one."""
        self.waiting += 1
        try:
            if self._slots is not None:
                await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            if self._slots is not None:
                self._slots.release()

    def fate(
        self,
        max_tokens: int | None,
        forced: str | None = None,
        prompt: str | None = None,
        prompt_tokens: int | None = None,
    ) -> Fate:
        """What happens to a request; ``prompt_tokens`` (else the prompt's words) counts into the prompt total."""
        self.requests += 1
        if prompt_tokens is None:
            prompt_tokens = len(prompt.split()) if prompt else 0
        self.prompt_tokens_total += prompt_tokens
        tokens = self.s.output_tokens if max_tokens is None else min(self.s.output_tokens, max_tokens)
        words = None
        if self.s.reply in ("echo", "judge", "auto") and prompt is not None:
            judging = self.s.reply == "judge" or (self.s.reply == "auto" and judge_parts(prompt) is not None)
            text = judge_reply(prompt) if judging else prompt
            words = [(" " if i else "") + w for i, w in enumerate(text.split(" "))]
            tokens = len(words)
        fate = self._fate(tokens, forced)
        fate.words = words
        return fate

    def _fate(self, tokens: int, forced: str | None) -> Fate:
        if forced in FAULT_KINDS:
            return Fate(forced, tokens)
        draw = self._rng.random()
        rates = (
            ("error", self.s.error_rate),
            ("throttle", self.s.throttle_rate),
            ("stall", self.s.stall_rate),
            ("stream_error", self.s.stream_error_rate),
        )
        for kind, rate in rates:
            if draw < rate:
                return Fate(kind, tokens)
            draw -= rate
        return Fate("ok", tokens)

    @staticmethod
    def word(i: int) -> str:
        return f" w{i}"

    async def chunks(self, fate: Fate, arrival: float) -> AsyncIterator[str]:
        """The generated text in chunks, each released at its deadline."""
        loop = asyncio.get_running_loop()
        ttft, itl = self.s.ttft_ms / 1000, self.s.itl_ms / 1000
        stall_before = 0 if self.s.stall_at == "first" else fate.tokens // 2
        halfway = fate.kind in ("stream_error", "truncated", "bad_chunked")
        last = 0 if fate.kind == "empty_stream" else fate.tokens // 2 if halfway else fate.tokens
        i = 0
        while i < last:
            if fate.kind == "stall" and i == stall_before:
                await asyncio.sleep(self.s.stall_s)
            n = min(self.s.tokens_per_chunk, last - i)
            deadline = arrival + ttft + (i + n - 1) * itl  # a chunk leaves with its last token
            delay = deadline - loop.time() - HALF_TICK_S
            if delay > 0:
                await asyncio.sleep(delay)
            self.generation_tokens_total += n
            if fate.words is not None:
                yield "".join(fate.words[i : i + n])
            else:
                yield "".join(self.word(i + k) for k in range(n))
            i += n
        if fate.kind not in BROKEN_OFF:
            self.success_total += 1

    async def wait_all(self, fate: Fate, arrival: float) -> str:
        """The whole text, released when the last token is due (non-streaming responses)."""
        return "".join([c async for c in self.chunks(fate, arrival)])


# Where a judge prompt holds the candidate's answer and the ground truth: fmb's templates tag
# them; FMBench's Claude template uses its own tags, its other templates labelled lines.
_ANSWER = (
    re.compile(r"<candidate_answer>\s*(.*?)\s*</candidate_answer>", re.DOTALL),
    re.compile(r"<candidate model output>\s*(.*?)\s*</candidate model output>", re.DOTALL),
    re.compile(r"candidate model response:\s*(.*?)\s*\n\s*\n", re.DOTALL),
)
_TRUTH = (
    re.compile(r"<ground_truth>\s*(.*?)\s*</ground_truth>", re.DOTALL),
    re.compile(r"^ground_truth:\s*(.*?)\s*$", re.MULTILINE),
)


def judge_parts(prompt: str) -> tuple[str, str] | None:
    """(candidate answer, ground truth) of a judge's prompt; None for any other prompt."""
    answer = next((m.group(1) for r in _ANSWER if (m := r.search(prompt))), None)
    truth = next((m.group(1) for r in _TRUTH if (m := r.search(prompt))), None)
    return None if answer is None or truth is None else (answer, truth)


def judge_reply(prompt: str) -> str:
    """A judge's JSON verdict: correct exactly when the answer contains the ground truth or one of its options."""
    answer, truth = judge_parts(prompt) or ("", "")
    options = [o.strip().lower() for o in truth.split(",") if o.strip()]
    correct = bool(options) and any(option in answer.lower() for option in options)
    verdict = "correct" if correct else "incorrect"
    explanation = "the answer contains the ground truth" if correct else "the ground truth is not in the answer"
    return json.dumps({"verdict": verdict, "explanation": explanation})


def prompt_of(body: dict[str, Any]) -> str | None:
    """The prompt text of a request body in any of the APIs the mock speaks."""
    for key in ("prompt", "inputs", "text_input", "inputText"):
        if isinstance(body.get(key), str):
            return str(body[key])
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        content = messages[-1].get("content") if isinstance(messages[-1], dict) else None
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return None


def embedding_of(text: str, dimensions: int = 32) -> list[float]:
    """A deterministic embedding: words hashed into buckets, normalized; same words, same direction."""
    import hashlib
    import math

    vector = [0.0] * dimensions
    for word in re.findall(r"\w+", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % dimensions] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]
