"""The mock's OpenAI-compatible routes: /v1/chat/completions, /v1/completions, /v1/models."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from fmb.collector.mock.behaviour import FAULT_HEADER, Behaviour, Fate, prompt_of


def _prompt_tokens(body: dict[str, Any]) -> int:
    if "messages" in body:
        text = " ".join(str(m.get("content", "")) for m in body["messages"])
    else:
        text = str(body.get("prompt", ""))
    return len(text.split())


def _fault_response(fate: Fate, behaviour: Behaviour) -> web.Response | None:
    if fate.kind == "error":
        status = behaviour.s.error_status
        return web.json_response({"error": {"message": "injected fault", "code": status}}, status=status)
    if fate.kind == "throttle":
        return web.json_response({"error": {"message": "Too many requests (injected)", "code": 429}}, status=429)
    return None


def _choice(chat: bool, text: str, final: bool, stream: bool) -> dict[str, Any]:
    finish = "length" if final else None
    if chat:
        key = "delta" if stream else "message"
        return {"index": 0, key: {"role": "assistant", "content": text}, "finish_reason": finish}
    return {"index": 0, "text": text, "finish_reason": finish}


NGINX_PAGE = "<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body>Welcome</body></html>"


async def _bad_chunked(request: web.Request, behaviour: Behaviour, fate: Fate, arrival: float) -> web.StreamResponse:
    """Valid chunks of a stream, then a chunk header that is not a hex size, and the connection held open."""
    transport = request.transport
    assert transport is not None
    transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    async for chunk in behaviour.chunks(fate, arrival):
        data = f"data: {json.dumps({'choices': [{'index': 0, 'text': chunk, 'finish_reason': None}]})}\n\n".encode()
        transport.write(b"%x\r\n%s\r\n" % (len(data), data))
    transport.write(b"zz-not-a-size\r\n")
    try:
        await asyncio.sleep(behaviour.s.stall_s)  # a client that waits for more would time out
    finally:
        transport.close()
    raise asyncio.CancelledError  # the answer was written by hand: aiohttp must not add one


# Headers every client sends; --echo-headers leaves them out so that the echo stays short.
_PLAIN_HEADERS = {"host", "accept", "accept-encoding", "content-length", "content-type", "user-agent", "connection"}


def echoed_headers(request: web.Request) -> str:
    """The request's own headers, as an endpoint that echoes them back would show them."""
    return "; ".join(f"{k}: {v}" for k, v in request.headers.items() if k.lower() not in _PLAIN_HEADERS)


def routes(behaviour: Behaviour) -> list[web.RouteDef]:
    async def completions(request: web.Request, chat: bool) -> web.StreamResponse:
        arrival = asyncio.get_running_loop().time()
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"error": {"message": "body is not JSON"}}, status=400)
        fate = behaviour.fate(
            body.get("max_tokens"), request.headers.get(FAULT_HEADER), prompt_of(body), _prompt_tokens(body)
        )
        if behaviour.s.echo_headers and fate.kind == "error":
            message = f"injected fault; request headers: {echoed_headers(request)}"
            return web.json_response({"error": {"message": message}}, status=behaviour.s.error_status)
        fault = _fault_response(fate, behaviour)
        if fault is not None:
            return fault
        if fate.kind == "html":
            return web.Response(text=NGINX_PAGE, content_type="text/html")
        obj = "chat.completion" if chat else "text_completion"
        usage = {
            "prompt_tokens": _prompt_tokens(body),
            "completion_tokens": fate.tokens,
            "total_tokens": _prompt_tokens(body) + fate.tokens,
        }
        created = int(time.time())
        if not body.get("stream") or fate.kind == "json_body":
            text = await behaviour.wait_all(fate, arrival)
            if behaviour.s.echo_headers:
                text += f" (request headers: {echoed_headers(request)})"
            answer = web.json_response(
                {
                    "id": "mock",
                    "object": obj,
                    "created": created,
                    "model": behaviour.s.model,
                    "choices": [_choice(chat, text, True, False)],
                    "usage": usage,
                }
            )
            behaviour.completed += 1
            return answer
        if fate.kind == "bad_chunked":
            return await _bad_chunked(request, behaviour, fate, arrival)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)

        async def event(payload: dict[str, Any]) -> None:
            await resp.write(f"data: {json.dumps(payload)}\n\n".encode())

        base = {"id": "mock", "object": f"{obj}.chunk" if chat else obj, "created": created, "model": behaviour.s.model}
        if fate.kind != "done_only":
            if chat:  # the role comes first, without content, as real servers send it
                await event(base | {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
            async for chunk in behaviour.chunks(fate, arrival):
                await event(base | {"choices": [_choice(chat, chunk, False, True)]})
                if fate.kind == "bare_data":  # a comment and an event of a bare `data` line: both carry nothing
                    await resp.write(b": keep-alive\n\ndata\n\n")
            if behaviour.s.echo_headers:
                echo = f" (request headers: {echoed_headers(request)})"
                await event(base | {"choices": [_choice(chat, echo, False, True)]})
            if fate.kind == "stream_error":
                await event({"error": {"message": "injected error in the middle of the stream", "code": 500}})
                await resp.write_eof()
                return resp
            if fate.kind == "truncated":
                await resp.write_eof()
                return resp
            await event(base | {"choices": [_choice(chat, "", True, True)]})
            if (body.get("stream_options") or {}).get("include_usage"):
                await event(base | {"choices": [], "usage": usage})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        behaviour.completed += 1
        return resp

    async def chat(request: web.Request) -> web.StreamResponse:
        return await completions(request, True)

    async def text(request: web.Request) -> web.StreamResponse:
        return await completions(request, False)

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": behaviour.s.model, "object": "model"}]})

    return [
        web.post("/v1/chat/completions", chat),
        web.post("/v1/completions", text),
        web.get("/v1/models", models),
    ]
