"""What every JSON-over-HTTP endpoint API shares: one aiohttp path for all of them.

A subclass says how a prompt becomes a request body (``body``), how a streamed event or
line reads (``chunk``) and how a whole response reads (``whole``); this class sends,
times and classifies.

Requests go through aiohttp rather than httpx: httpx's async stack costs about three
times the CPU per streamed request, and under concurrency that CPU time is added to the
TTFT of other requests (``bench/client_overhead.py`` prints both clients' figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
import orjson

from fmb.collector.targets.base import (
    EndpointError,
    Recorder,
    Request,
    Target,
    Usage,
    http_error,
    with_output_limit,
)
from fmb.collector.targets.streams import json_lines, sse_data
from fmb.config import ResolvedExperiment
from fmb.errors import CollectError
from fmb.redact import Redactor


@dataclass(slots=True)
class Chunk:
    """What one streamed event (or a whole response) carries.

    ``final``: the API's own end-of-response marker (a finish reason, ``done: true``,
    TGI's closing ``generated_text``); a stream that ends without one was cut short.
    ``done``: stop reading here (nothing after it matters).
    """

    text: str | None = None
    usage: Usage | None = None
    error: str | None = None
    done: bool = False
    final: bool = False


def auth_headers(exp: ResolvedExperiment) -> dict[str, str]:
    """Configured headers (experiment and inference_spec), plus a bearer token from api_key_env."""
    headers = {str(k): str(v) for k, v in exp.spec.inference_spec.headers.items()}
    headers.update({str(k): str(v) for k, v in exp.spec.headers.items()})
    if exp.spec.api_key_env:
        key = os.environ.get(exp.spec.api_key_env)
        if not key:
            raise CollectError(
                f"experiment {exp.name!r}: api_key_env names {exp.spec.api_key_env}, which is not set.",
                hint=f"export {exp.spec.api_key_env}=... before running fmb (the key is never written anywhere).",
            )
        headers["Authorization"] = f"Bearer {key}"
    return headers


async def _request_sent(_: aiohttp.ClientSession, context: Any, __: Any) -> None:
    """The request's last byte went to the socket: this is when the request was sent."""
    rec = context.trace_request_ctx
    if isinstance(rec, Recorder):
        rec.start()


_SENT_TRACE = aiohttp.TraceConfig()
_SENT_TRACE.on_request_chunk_sent.append(_request_sent)
_SENT_TRACE.freeze()


class HttpTarget(Target):
    """A JSON API over HTTP; streamed as server-sent events or JSON lines, or not at all."""

    # How a streamed response is framed: "sse" or "json-lines".
    framing: ClassVar[str] = "sse"
    # Whether the API marks the end of a streamed response (see Chunk.final); Triton's and
    # DJL's streams just end, so for them a stream that stops early cannot be told apart.
    end_marker: ClassVar[bool] = True

    def __init__(self, exp: ResolvedExperiment, max_connections: int, url: str, stream: bool) -> None:
        self.backend = exp.backend
        self.exp = exp
        self.url = url
        self.stream = stream
        self.headers = {"Content-Type": "application/json"} | auth_headers(exp)
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None

    # --- what a subclass says ---------------------------------------------------------

    def body(self, request: Request) -> dict[str, Any]:
        raise NotImplementedError

    def chunk(self, data: Any) -> Chunk:
        """One streamed event or line, parsed from JSON."""
        raise NotImplementedError

    def whole(self, data: Any) -> Chunk:
        """A complete (non-streamed) response, parsed from JSON."""
        raise NotImplementedError

    # --- sending ------------------------------------------------------------------------

    def _new_session(self, keep_alive: bool) -> aiohttp.ClientSession:
        timeout = self.exp.spec.request_timeout_s
        # No sock_read time-out: the runner bounds every try by request_timeout_s as a whole
        # (fmb.collector.runner.send_one), which always ends before a read time-out of the same
        # length could, and aiohttp would re-arm a read timer for every streamed chunk.
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.max_connections, force_close=not keep_alive),
            trace_configs=[_SENT_TRACE],
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(timeout, 10.0)),
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        """Connections kept alive between requests, as real clients do (created inside the event loop)."""
        if self._session is None:
            self._session = self._new_session(keep_alive=True)
        return self._session

    @property
    def fresh_session(self) -> aiohttp.ClientSession:
        """A new connection for every request: for re-sending after a kept-alive one was found closed."""
        if self._fresh is None:
            self._fresh = self._new_session(keep_alive=False)
        return self._fresh

    def describe(self) -> str:
        return Redactor()(self.url) or self.url

    async def close(self) -> None:
        for session in (self._session, self._fresh):
            if session is not None:
                await session.close()

    async def check_reachable(self) -> None:
        """A TCP connection to the server, closed at once: no HTTP request, so nothing the server
        could count as load (a `GET /` would be one more request in its metrics)."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), timeout=5)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        except (OSError, TimeoutError) as exc:
            raise CollectError(
                f"experiment {self.exp.name!r}: cannot reach {self.describe()} "
                f"({type(exc).__name__}: {exc or 'no answer'}).",
                hint="Is the server running and is endpoint_url (or ep_name) right? "
                "Nothing was sent and no run was recorded.",
            ) from None

    async def send(self, request: Request, rec: Recorder) -> Usage:
        body = json.dumps(with_output_limit(self.body(request), request)).encode()
        try:
            return await self._post(self.session, body, rec)
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
            # A kept-alive connection the server had closed (llama.cpp closes one after every
            # streamed response): nothing reached the server, so send again on a new
            # connection. The retry is counted in `attempts` and the clock starts again.
            if rec.http_status is not None or rec.chunk_ns:
                raise
            rec.restart()
            return await self._post(self.fresh_session, body, rec)

    async def _post(self, session: aiohttp.ClientSession, body: bytes, rec: Recorder) -> Usage:
        rec.start()  # stamped again when the last byte of the request is written
        async with session.post(self.url, data=body, headers=self.headers, trace_request_ctx=rec) as response:
            with _body_breaks_on_connection_loss(response):
                rec.http_status = response.status
                if response.status >= 400:
                    text = (await read_body(response)).decode("utf-8", "replace")
                    rec.finish()
                    raise http_error(response.status, text)
                usage = await (self._read_stream(response, rec) if self.stream else self._read_whole(response, rec))
        return usage or Usage()

    async def _read_whole(self, response: aiohttp.ClientResponse, rec: Recorder) -> Usage | None:
        try:
            raw = await read_body(response)
        except aiohttp.ClientPayloadError as exc:
            raise EndpointError(
                "protocol_error", f"the response body broke off ({exc})", http_status=response.status
            ) from None
        rec.finish()
        try:
            whole = self.whole(loads(raw))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise EndpointError(
                "bad_response", f"unexpected response ({exc}): {raw[:200]!r}", http_status=response.status
            ) from None
        if whole.error:
            raise EndpointError("response_error", whole.error[:300], http_status=response.status)
        rec.parts.append(whole.text or "")
        return whole.usage

    async def _read_stream(self, response: aiohttp.ClientResponse, rec: Recorder) -> Usage | None:
        check_stream_type(response, self.framing)
        state = _Stream(sse=self.framing == "sse")
        reads = sse_data(response.content) if state.sse else json_lines(response.content)
        try:
            async for documents in reads:  # all the documents that one read completed
                self._take(documents, rec, state, response.status)
                if state.stop:
                    break
        except aiohttp.ClientPayloadError as exc:
            raise EndpointError(
                "protocol_error", f"the response body broke off ({exc})", http_status=response.status
            ) from None
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:  # JSON errors are ValueErrors
            raise EndpointError(
                "stream_error", f"unreadable streamed event ({type(exc).__name__}: {exc})", http_status=response.status
            ) from None
        rec.finish()
        if self.end_marker and not state.ended:
            raise EndpointError(
                "stream_incomplete",
                f"the stream ended after {len(rec.chunk_ns)} content chunk(s) without the API's end marker "
                "([DONE], a finish reason or done)",
                http_status=response.status,
            )
        return state.usage

    def _take(self, documents: list[bytes], rec: Recorder, state: _Stream, http_status: int) -> None:
        """Read streamed documents in order into ``rec`` and ``state``, up to one that ends the stream."""
        for raw in documents:
            if raw[:1].isspace() or raw[-1:].isspace():
                raw = raw.strip()
                if not raw:  # whitespace only: a keep-alive that carries nothing
                    continue
            if state.sse and raw == b"[DONE]":  # OpenAI's end of the stream
                state.ended = state.stop = True
                return
            part = self.chunk(loads(raw))
            if part.error:
                raise EndpointError("stream_error", part.error[:300], http_status=http_status)
            rec.content(part.text)
            state.usage = part.usage or state.usage
            state.ended = state.ended or part.final
            if part.done:
                state.stop = True
                return


@dataclass
class _Stream:
    """Where the reading of a streamed response stands."""

    sse: bool
    usage: Usage | None = None
    ended: bool = False  # the API's end marker came
    stop: bool = False  # nothing after this matters


def loads(raw: bytes) -> Any:
    """One JSON document: orjson's fast parser, else the standard library's, which also reads what orjson
    refuses (NaN, Infinity, integers beyond 64 bits, lone surrogates) as it always did."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


@contextmanager
def _body_breaks_on_connection_loss(response: aiohttp.ClientResponse) -> Iterator[None]:
    """Make a body that the connection's end leaves unfinished raise ClientPayloadError.

    When the chunked encoding of a body breaks, aiohttp (3.14) closes the connection but
    may leave the body's reader waiting until the time-out; this ends the wait at once.
    """
    connection = response.connection
    protocol = connection.protocol if connection is not None else None
    closed = protocol.closed if protocol is not None else None
    if closed is None:
        yield
        return

    def lost(_: object) -> None:
        if not response.content.is_eof():
            response.content.set_exception(
                aiohttp.ClientPayloadError("the connection closed in the middle of the response body")
            )

    closed.add_done_callback(lost)
    try:
        yield
    finally:
        closed.remove_done_callback(lost)


async def read_body(response: aiohttp.ClientResponse) -> bytes:
    """The whole body. Unlike ``response.read()``, which waits until the time-out when the chunked
    encoding breaks (aiohttp 3.x), reading piece by piece raises ClientPayloadError at once."""
    return b"".join([piece async for piece in response.content.iter_any()])


# Content types that a streamed response of each framing may have.
_STREAM_TYPES = {
    "sse": ("text/event-stream",),
    "json-lines": (
        "application/x-ndjson",
        "application/jsonlines",
        "application/jsonl",
        "application/json-lines",
        "application/json",
        "text/plain",
        "",
    ),
}


def check_stream_type(response: aiohttp.ClientResponse, framing: str) -> None:
    """A 200 whose body is not the stream that was asked for (an HTML page, a plain JSON body) is a failure."""
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type not in _STREAM_TYPES[framing]:
        expected = " or ".join(t for t in _STREAM_TYPES[framing] if t)
        raise EndpointError(
            "not_a_stream",
            f"HTTP {response.status} with Content-Type {content_type or '(none)'!r} where a stream ({expected}) "
            "was asked for",
            http_status=response.status,
        )
