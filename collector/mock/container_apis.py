"""The mock's native container APIs: TGI, Triton, DJL Serving, Ollama, llama.cpp and custom REST.

Each route takes its API's request shape, draws the request's fate from the shared
:class:`~fmb.collector.mock.behaviour.Behaviour` and answers in its API's response shape,
streamed where the API streams, with the same exact timings as the OpenAI routes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from fmb.collector.mock.behaviour import Behaviour, Fate, prompt_of

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fault(fate: Fate, behaviour: Behaviour) -> web.Response | None:
    """The HTTP answer for an injected error or throttle, or None for a normal request."""
    if fate.kind == "error":
        status = behaviour.s.error_status
        return web.json_response({"error": "injected fault", "error_type": "mock"}, status=status)
    if fate.kind == "throttle":
        return web.json_response({"error": "Too many requests (injected)"}, status=429)
    return None


async def _stream(request: web.Request, content_type: str, lines: Callable[[], Any]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": content_type})
    await resp.prepare(request)
    async for line in lines():
        await resp.write(line)
    await resp.write_eof()
    return resp


def _sse(data: dict[str, Any]) -> bytes:
    return f"data:{json.dumps(data)}\n\n".encode()


def _json_line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data) + "\n").encode()


BROKEN = {"error": "injected error in the middle of the stream"}


def routes(behaviour: Behaviour) -> list[web.RouteDef]:
    async def start(request: web.Request, max_tokens: Callable[[dict[str, Any]], Any]) -> tuple[dict, Fate, float]:
        arrival = asyncio.get_running_loop().time()
        body = await request.json()
        return body, behaviour.fate(max_tokens(body), prompt=prompt_of(body)), arrival

    def params(body: dict[str, Any]) -> dict[str, Any]:
        return body.get("parameters") or {}

    async def tgi(request: web.Request, stream: bool) -> web.StreamResponse:
        _body, fate, arrival = await start(request, lambda b: params(b).get("max_new_tokens"))
        if (answer := fault(fate, behaviour)) is not None:
            return answer
        details = {"finish_reason": "length", "generated_tokens": fate.tokens, "seed": None}
        if not stream:
            text = await behaviour.wait_all(fate, arrival)
            return web.json_response([{"generated_text": text, "details": details}])

        async def lines() -> Any:
            i = 0
            text = ""
            async for piece in behaviour.chunks(fate, arrival):
                i += 1
                text += piece
                last = i * behaviour.s.tokens_per_chunk >= fate.tokens
                # The last event carries the whole text (and the details), as TGI sends it.
                yield _sse(
                    {
                        "token": {"id": i, "text": piece, "logprob": 0.0, "special": False},
                        "generated_text": text if last else None,
                        "details": details if last else None,
                    }
                )
            if fate.kind == "stream_error":
                yield _sse(BROKEN)

        return await _stream(request, "text/event-stream", lines)

    async def triton(request: web.Request, stream: bool) -> web.StreamResponse:
        _body, fate, arrival = await start(request, lambda b: b.get("max_tokens"))
        if (answer := fault(fate, behaviour)) is not None:
            return answer
        model = request.match_info["model"]
        if not stream:
            text = await behaviour.wait_all(fate, arrival)
            return web.json_response({"model_name": model, "text_output": text})

        async def lines() -> Any:
            async for piece in behaviour.chunks(fate, arrival):
                yield _sse({"model_name": model, "text_output": piece})
            if fate.kind == "stream_error":
                yield _sse(BROKEN)

        return await _stream(request, "text/event-stream", lines)

    async def djl(request: web.Request) -> web.StreamResponse:
        body, fate, arrival = await start(request, lambda b: params(b).get("max_new_tokens"))
        if (answer := fault(fate, behaviour)) is not None:
            return answer
        if not body.get("stream"):
            return web.json_response({"generated_text": await behaviour.wait_all(fate, arrival)})

        async def lines() -> Any:
            async for piece in behaviour.chunks(fate, arrival):
                yield _json_line({"token": {"text": piece}})
            if fate.kind == "stream_error":
                yield _json_line(BROKEN)

        return await _stream(request, "application/jsonlines", lines)

    async def ollama(request: web.Request) -> web.StreamResponse:
        body, fate, arrival = await start(request, lambda b: (b.get("options") or {}).get("num_predict"))
        if (answer := fault(fate, behaviour)) is not None:
            return answer
        prompt_tokens = len(str(body.get("prompt", "")).split())
        final = {
            "model": body.get("model"),
            "done": True,
            "prompt_eval_count": prompt_tokens,
            "eval_count": fate.tokens,
        }
        if body.get("stream") is False:
            return web.json_response(final | {"response": await behaviour.wait_all(fate, arrival)})

        async def lines() -> Any:
            async for piece in behaviour.chunks(fate, arrival):
                yield _json_line({"model": body.get("model"), "response": piece, "done": False})
            yield _json_line(BROKEN if fate.kind == "stream_error" else final | {"response": ""})

        return await _stream(request, "application/x-ndjson", lines)

    async def llama_cpp(request: web.Request) -> web.StreamResponse:
        body, fate, arrival = await start(request, lambda b: b.get("n_predict"))
        if (answer := fault(fate, behaviour)) is not None:
            return answer
        final = {
            "stop": True,
            "tokens_evaluated": len(str(body.get("prompt", "")).split()),
            "tokens_predicted": fate.tokens,
        }
        if not body.get("stream"):
            return web.json_response(final | {"content": await behaviour.wait_all(fate, arrival)})

        async def lines() -> Any:
            async for piece in behaviour.chunks(fate, arrival):
                yield _sse({"content": piece, "stop": False})
            yield _sse(BROKEN if fate.kind == "stream_error" else final | {"content": ""})

        return await _stream(request, "text/event-stream", lines)

    async def custom_rest(request: web.Request) -> web.StreamResponse:
        if "custom_authentication_token" not in request.headers:
            return web.json_response({"error": "missing custom_authentication_token header"}, status=401)
        body, fate, arrival = await start(request, lambda b: (b.get("generation_config") or {}).get("max_tokens"))
        if (answer := fault(fate, behaviour)) is not None:
            return answer
        text = await behaviour.wait_all(fate, arrival)
        usage = {"prompt_tokens": len(str(body.get("prompt", "")).split()), "completion_tokens": fate.tokens}
        return web.json_response({"model_id": body.get("model_id"), "completions": [{"text": text}], "usage": usage})

    return [
        web.post("/generate", lambda r: tgi(r, False)),
        web.post("/generate_stream", lambda r: tgi(r, True)),
        web.post("/v2/models/{model}/generate", lambda r: triton(r, False)),
        web.post("/v2/models/{model}/generate_stream", lambda r: triton(r, True)),
        web.post("/invocations", djl),
        web.post("/api/generate", ollama),
        web.post("/completion", llama_cpp),
        web.post("/custom/generate", custom_rest),
    ]
