"""What every JSON-over-HTTP endpoint API shares: one aiohttp path for all of them.

A subclass says how a prompt becomes a request body (``body``), how a streamed event or
line reads (``chunk``) and how a whole response reads (``whole``); this class sends,
times and classifies.

Requests go through aiohttp rather than httpx: httpx's async stack costs about three
times the CPU per streamed request, and under concurrency that CPU time is added to the
TTFT of other requests (``bench/client_overhead.py`` prints both clients' figures).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from fmb.collector.targets.base import EndpointError, Recorder, Request, Target, Usage, http_error
from fmb.collector.targets.streams import iter_events, iter_json_lines

from fmb.config import ResolvedExperiment
from fmb.errors import CollectError
from fmb.redact import Redactor


@dataclass
class Chunk:
    """What one streamed event (or a whole response) carries."""

    text: str | None = None
    usage: Usage | None = None
    error: str | None = None
    done: bool = False


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
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.max_connections, force_close=not keep_alive),
            trace_configs=[_SENT_TRACE],
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(timeout, 10.0), sock_read=timeout),
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
        parts = urlsplit(self.url)
        try:
            async with self.session.get(
                urlunsplit((parts.scheme, parts.netloc, "/", "", "")), timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CollectError(
                f"experiment {self.exp.name!r}: cannot reach {self.url} ({type(exc).__name__}: {exc or 'no answer'}).",
                hint="Is the server running and is endpoint_url (or ep_name) right? "
                "Nothing was sent and no run was recorded.",
            ) from None

    async def send(self, request: Request, rec: Recorder) -> Usage:
        body = json.dumps(self.body(request)).encode()
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
            rec.http_status = response.status
            if response.status >= 400:
                text = (await response.read()).decode("utf-8", "replace")
                rec.finish()
                raise http_error(response.status, text)
            if self.stream:
                usage = await self._read_stream(response, rec)
            else:
                raw = await response.read()
                rec.finish()
                try:
                    whole = self.whole(json.loads(raw))
                except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
                    raise EndpointError("bad_response", f"unexpected response ({exc}): {raw[:200]!r}") from None
                if whole.error:
                    raise EndpointError("response_error", whole.error[:300], http_status=rec.http_status)
                rec.parts.append(whole.text or "")
                usage = whole.usage
        return usage or Usage()

    async def _read_stream(self, response: aiohttp.ClientResponse, rec: Recorder) -> Usage | None:
        usage = None
        if self.framing == "sse":
            documents = _sse_documents(response.content)
        else:
            documents = iter_json_lines(response.content)
        try:
            async for data in documents:
                part = self.chunk(data)
                if part.error:
                    raise EndpointError("stream_error", part.error[:300], http_status=response.status)
                rec.content(part.text)
                usage = part.usage or usage
                if part.done:
                    break
        except (ValueError, KeyError, IndexError, TypeError) as exc:  # JSON errors are ValueErrors
            raise EndpointError("stream_error", f"unreadable streamed event ({type(exc).__name__}: {exc})") from None
        rec.finish()
        return usage


async def _sse_documents(stream: aiohttp.StreamReader) -> AsyncIterator[Any]:
    """The JSON documents of an SSE stream, up to OpenAI's `[DONE]` marker."""
    async for event in iter_events(stream):
        if event.data.strip() == "[DONE]":
            return
        yield json.loads(event.data)
