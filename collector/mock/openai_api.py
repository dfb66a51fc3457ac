"""The mock's OpenAI-compatible routes: /v1/chat/completions, /v1/completions, /v1/models."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web
from fmb.collector.mock.behaviour import Behaviour, Fate


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


def routes(behaviour: Behaviour) -> list[web.RouteDef]:
    async def completions(request: web.Request, chat: bool) -> web.StreamResponse:
        arrival = asyncio.get_running_loop().time()
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"error": {"message": "body is not JSON"}}, status=400)
        fate = behaviour.fate(body.get("max_tokens"))
        fault = _fault_response(fate, behaviour)
        if fault is not None:
            return fault
        obj = "chat.completion" if chat else "text_completion"
        usage = {
            "prompt_tokens": _prompt_tokens(body),
            "completion_tokens": fate.tokens,
            "total_tokens": _prompt_tokens(body) + fate.tokens,
        }
        created = int(time.time())
        if not body.get("stream"):
            text = await behaviour.wait_all(fate, arrival)
            return web.json_response(
                {"id": "mock", "object": obj, "created": created, "model": behaviour.s.model,
                 "choices": [_choice(chat, text, True, False)], "usage": usage}
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)

        async def event(payload: dict[str, Any]) -> None:
            await resp.write(f"data: {json.dumps(payload)}\n\n".encode())

        base = {"id": "mock", "object": f"{obj}.chunk" if chat else obj, "created": created, "model": behaviour.s.model}
        if chat:  # the role comes first, without content, as real servers send it
            await event(base | {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
        async for chunk in behaviour.chunks(fate, arrival):
            await event(base | {"choices": [_choice(chat, chunk, False, True)]})
        if fate.kind == "stream_error":
            await event({"error": {"message": "injected error in the middle of the stream", "code": 500}})
            await resp.write_eof()
            return resp
        await event(base | {"choices": [_choice(chat, "", True, True)]})
        if (body.get("stream_options") or {}).get("include_usage"):
            await event(base | {"choices": [], "usage": usage})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
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
