"""OpenAI-compatible chat and completions APIs (vLLM, TGI, llama.cpp, SGLang, ...).

Requests go through aiohttp rather than httpx: httpx's async stack costs about three
times the CPU per streamed request, and under concurrency that CPU time is added to the
TTFT of other requests (``bench/client_overhead.py`` prints both clients' figures).
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from fmb.collector.targets.base import EndpointError, Recorder, Request, Target, Usage, http_error
from fmb.collector.targets.sse import iter_events
from fmb.config import ResolvedExperiment
from fmb.errors import CollectError

# FMBench parameter names that mean the same as an OpenAI one.
RENAMED = {"max_new_tokens": "max_tokens", "num_predict": "max_tokens"}
# Parameters of other APIs (TGI, Bedrock, Ollama) that OpenAI servers reject or misread.
DROPPED = {"details", "do_sample", "return_full_text", "caching", "decoder_input_details", "watermark", "truncate"}


def openai_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """FMBench inference parameters translated for an OpenAI-compatible server."""
    out: dict[str, Any] = {}
    for key, value in parameters.items():
        if key in DROPPED:
            continue
        if key == "options" and isinstance(value, dict):  # Ollama nests its sampling options
            out.update(openai_parameters(value))
            continue
        out[RENAMED.get(key, key)] = value
    return out


def endpoint_url(base: str, api: str) -> str:
    """The full URL for an API, from a base such as http://host:8000 or http://host:8000/v1."""
    suffix = "/chat/completions" if api == "openai-chat" else "/completions"
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    if path.endswith(("/chat/completions", "/completions")):
        return base
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path + suffix, parts.query, ""))


def auth_headers(exp: ResolvedExperiment) -> dict[str, str]:
    """Configured headers, plus a bearer token read from the environment variable named by api_key_env."""
    headers = {str(k): str(v) for k, v in exp.spec.headers.items()}
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


class OpenAITarget(Target):
    def __init__(self, exp: ResolvedExperiment, max_connections: int) -> None:
        self.backend = exp.backend
        self.exp = exp
        assert exp.endpoint is not None
        self.url = endpoint_url(exp.endpoint, exp.backend)
        self.stream = exp.stream
        params = openai_parameters(exp.parameters)
        self.model = params.pop("model", None) or exp.spec.model_id or exp.spec.model_name or "default"
        self.params = params
        self.headers = auth_headers(exp) | {"Content-Type": "application/json"}
        if self.stream:
            self.headers["Accept"] = "text/event-stream"
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None

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
        return self.url

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

    def body(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model}
        if self.backend == "openai-chat":
            body["messages"] = [{"role": "user", "content": request.prompt}]
        else:
            body["prompt"] = request.prompt
        body.update(self.params)
        body["stream"] = self.stream
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _content(self, choice: dict[str, Any]) -> str | None:
        if self.backend == "openai-chat":
            part = choice.get("delta") or choice.get("message") or {}
            return (part.get("content") or "") + (part.get("reasoning_content") or part.get("reasoning") or "")
        return choice.get("text")

    @staticmethod
    def _usage(data: dict[str, Any]) -> Usage | None:
        usage = data.get("usage")
        if not usage:
            return None
        return Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))

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
                return await self._read_stream(response, rec) or Usage()
            data = json.loads(await response.read())
            rec.finish()
        if "error" in data:
            raise EndpointError("response_error", str(data["error"])[:300], http_status=rec.http_status)
        for choice in data.get("choices") or []:
            rec.parts.append(self._content(choice) or "")
        return self._usage(data) or Usage()

    async def _read_stream(self, response: aiohttp.ClientResponse, rec: Recorder) -> Usage | None:
        usage = None
        async for event in iter_events(response.content):
            if event.data.strip() == "[DONE]":
                break
            try:
                data = json.loads(event.data)
            except json.JSONDecodeError:
                raise EndpointError("stream_error", f"not JSON in the stream: {event.data[:200]}") from None
            if "error" in data:
                raise EndpointError("stream_error", str(data["error"])[:300], http_status=response.status)
            for choice in data.get("choices") or []:
                rec.content(self._content(choice))
            usage = self._usage(data) or usage
        rec.finish()
        return usage
