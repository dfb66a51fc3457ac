"""The seam every endpoint API plugs into: ``Target.send(request, recorder)``.

A target turns a prompt into the API's request, sends it, and reports what happens to
a :class:`Recorder`: ``start()`` right before the request goes out, ``content(text)``
for every chunk that carries generated text, ``finish()`` when the response has ended.
It returns the server's token usage when there is one. A failure is raised as an
:class:`EndpointError` (or any ``aiohttp``/``botocore`` error, which the runner classifies);
the runner turns both into a row and goes on.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fmb.collector.schemas import RequestStatus

if TYPE_CHECKING:
    from fmb.config import LoadedConfig, ResolvedExperiment


@dataclass(frozen=True)
class Request:
    """One prompt from a payload file."""

    prompt_id: str
    prompt: str
    payload: dict[str, Any]  # the payload line as read (inputs, ground_truth, question, ...)
    # Trace replay: the output length the trace gave this request, sent as its maximum new tokens.
    max_output_tokens: int | None = None


# What the APIs fmb speaks call the most tokens to generate (in the parameters or beside them).
OUTPUT_LIMIT_KEYS = frozenset(
    {"max_tokens", "max_new_tokens", "max_completion_tokens", "n_predict", "num_predict", "maxTokens",
     "max_gen_len", "max_tokens_to_sample"}
)  # fmt: skip


def with_output_limit(body: dict[str, Any], request: Request) -> dict[str, Any]:
    """``body`` with every maximum-new-tokens setting in it (at the top or one object down, e.g.
    ``parameters`` or ``inferenceConfig``) set to the request's ``max_output_tokens``; a copy, the
    experiment's parameters stay as they are. Without a limit the body is returned as it is.

    Raises :class:`EndpointError` when the body has no such setting to set: the request is then a
    failed row that says so, rather than one that silently generated another length.
    """
    limit = request.max_output_tokens
    if limit is None:
        return body
    found = False

    def limited(part: dict[str, Any], depth: int) -> dict[str, Any]:
        nonlocal found
        out: dict[str, Any] = {}
        for key, value in part.items():
            if key in OUTPUT_LIMIT_KEYS and not isinstance(value, dict):
                out[key], found = limit, True
            elif isinstance(value, dict) and depth == 0:
                out[key] = limited(value, 1)
            else:
                out[key] = value
        return out

    body = limited(body, 0)
    if not found:
        raise EndpointError(
            "output_length_not_applied",
            f"the trace gives this request an output length ({limit} tokens), but the request has no maximum-tokens "
            f"parameter to set it in ({', '.join(sorted(OUTPUT_LIMIT_KEYS))}); add one to the experiment's "
            "inference parameters",
            status="error",
        )
    return body


@dataclass
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def as_int(value: Any) -> int | None:
    """A token count from a response field (a number, or a number in a string), else None."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class EndpointError(Exception):
    """A failure the target recognised: an HTTP error status, an error event in a stream, ..."""

    def __init__(
        self,
        error_type: str,
        message: str,
        *,
        http_status: int | None = None,
        status: RequestStatus = "error",
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.http_status = http_status
        self.status = status


def http_error(http_status: int, body: str) -> EndpointError:
    """An error for an HTTP status; 429 (and 503 with 'throttl' in the body) is throttling."""
    throttled = http_status == 429 or (http_status == 503 and "throttl" in body.lower())
    return EndpointError(
        f"http_{http_status}",
        body.strip()[:300] or f"HTTP {http_status}",
        http_status=http_status,
        status="throttled" if throttled else "error",
    )


@dataclass
class Recorder:
    """Monotonic-clock timestamps (ns) of one request, plus what it generated."""

    start_ns: int | None = None
    start_wall_ns: int | None = None
    end_ns: int | None = None
    chunk_ns: list[int] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    http_status: int | None = None
    attempts: int = 1
    model_copy: int | None = None  # which copy of the model served it, when there are several

    def start(self) -> None:
        self.start_wall_ns = time.time_ns()
        self.start_ns = time.perf_counter_ns()

    def restart(self) -> None:
        """A retry: the clock starts again and the attempt is counted (never hidden in latency)."""
        self.attempts += 1
        self.chunk_ns.clear()
        self.parts.clear()
        self.http_status = None
        self.end_ns = None
        self.start()

    def adopt(self, other: Recorder) -> None:
        """Take the timings and text another Recorder (a worker thread's) made for this request."""
        if other.start_ns is not None:
            self.start_ns, self.start_wall_ns = other.start_ns, other.start_wall_ns
        self.end_ns = other.end_ns
        self.chunk_ns = list(other.chunk_ns)
        self.parts = list(other.parts)
        self.http_status = other.http_status

    def content(self, text: str | None) -> None:
        if text:
            self.chunk_ns.append(time.perf_counter_ns())
            self.parts.append(text)

    def finish(self) -> None:
        if self.end_ns is None:
            self.end_ns = time.perf_counter_ns()

    @property
    def text(self) -> str:
        return "".join(self.parts)


class Target(ABC):
    """An endpoint API. Open it with ``async with``; ``send`` may run concurrently."""

    backend: str = ""
    stream: bool = False  # whether responses are streamed (set by each target from the experiment)

    @classmethod
    def for_experiment(cls, exp: ResolvedExperiment, loaded: LoadedConfig, max_connections: int) -> Target:
        """The target for an experiment; HTTP targets need only the experiment, AWS ones the config too."""
        return cls(exp, max_connections)  # type: ignore[call-arg]

    async def __aenter__(self) -> Target:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abstractmethod
    async def check_reachable(self) -> None:
        """Raise :class:`fmb.errors.CollectError` when the endpoint cannot be reached at all."""

    @abstractmethod
    async def send(self, request: Request, rec: Recorder) -> Usage:
        """Send one request; call ``rec.start()``, ``rec.content()``, ``rec.finish()``."""

    def describe(self) -> str:
        """Where requests go (no credentials), for the experiments table and messages."""
        return self.backend
