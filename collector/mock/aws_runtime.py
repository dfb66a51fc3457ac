"""The mock's Amazon SageMaker runtime and Amazon Bedrock runtime APIs (rest-json, event streams).

boto3 clients pointed at the mock (``endpoint_url``) run their real code paths: SigV4
signing (not checked here), serialisation, error parsing and event-stream decoding.

SageMaker: ``InvokeEndpoint`` and ``InvokeEndpointWithResponseStream`` for TGI/DJL payloads
(``{inputs, parameters}``, streamed as TGI server-sent events inside ``PayloadPart``
events, split across parts), the messages API (OpenAI-style) and embeddings.
Bedrock: ``Converse``, ``ConverseStream``, ``InvokeModel`` and
``InvokeModelWithResponseStream`` for the model families fmb knows.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from fmb.collector.mock import eventstream
from fmb.collector.mock.behaviour import Behaviour, Fate, embedding_of, prompt_of

THROTTLED = "Too many requests, please wait before trying again (injected)."


def aws_error(code: str, status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response(
        {"message": message, "Message": message, **extra}, status=status, headers={"x-amzn-ErrorType": code}
    )


def _fault(fate: Fate, behaviour: Behaviour, service: str) -> web.Response | None:
    if fate.kind == "throttle":
        return aws_error("ThrottlingException", 429, THROTTLED)
    if fate.kind == "error":
        status = behaviour.s.error_status
        if service == "sagemaker":
            return aws_error(
                "ModelError",
                424,
                f'Received server error ({status}) from primary with message "injected fault".',
                OriginalStatusCode=status,
                OriginalMessage="injected fault",
            )
        return aws_error(
            "InternalServerException" if status >= 500 else "ValidationException",
            status if status >= 500 else 400,
            "injected fault",
        )
    return None


async def _event_stream(request: web.Request, messages: AsyncIterator[bytes], **headers: str) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": eventstream.CONTENT_TYPE, **headers})
    await resp.prepare(request)
    async for message in messages:
        await resp.write(message)
    await resp.write_eof()
    return resp


def _prompt_tokens(text: str) -> int:
    return len(text.split())


# --- SageMaker runtime ----------------------------------------------------------------


def sagemaker_routes(behaviour: Behaviour) -> list[web.RouteDef]:
    def max_tokens(body: dict[str, Any]) -> int | None:
        params = body.get("parameters") or {}
        return params.get("max_new_tokens") or body.get("max_tokens") or body.get("max_new_tokens")

    async def invoke(request: web.Request) -> web.StreamResponse:
        arrival = asyncio.get_running_loop().time()
        body = await request.json()
        if "text_inputs" in body:  # an embedding model
            fate = behaviour.fate(0)
            if (answer := _fault(fate, behaviour, "sagemaker")) is not None:
                return answer
            await asyncio.sleep(behaviour.s.ttft_ms / 1000)
            inputs = body["text_inputs"]
            texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs]
            return web.json_response({"embedding": [embedding_of(t) for t in texts]})
        fate = behaviour.fate(max_tokens(body), prompt=prompt_of(body))
        if (answer := _fault(fate, behaviour, "sagemaker")) is not None:
            return answer
        text = await behaviour.wait_all(fate, arrival)
        if "messages" in body:
            prompt = " ".join(str(m.get("content")) for m in body["messages"])
            return web.json_response(
                {
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": _prompt_tokens(prompt), "completion_tokens": fate.tokens},
                }
            )
        details = {"generated_tokens": fate.tokens} if (body.get("parameters") or {}).get("details") else None
        return web.json_response([{"generated_text": text, "details": details}])

    async def invoke_stream(request: web.Request) -> web.StreamResponse:
        arrival = asyncio.get_running_loop().time()
        body = await request.json()
        fate = behaviour.fate(max_tokens(body), prompt=prompt_of(body))
        if (answer := _fault(fate, behaviour, "sagemaker")) is not None:
            return answer
        messages_api = "messages" in body

        def line(piece: str, i: int, last: bool) -> bytes:
            if messages_api:
                return f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': piece}}]})}\n\n".encode()
            details = {"finish_reason": "length", "generated_tokens": fate.tokens} if last else None
            data = {
                "token": {"id": i, "text": piece, "logprob": 0.0, "special": False},
                "generated_text": None,
                "details": details,
            }
            return f"data:{json.dumps(data)}\n\n".encode()

        async def messages() -> AsyncIterator[bytes]:
            i = 0
            async for piece in behaviour.chunks(fate, arrival):
                i += 1
                raw = line(piece, i, i * behaviour.s.tokens_per_chunk >= fate.tokens)
                # Parts do not follow line boundaries: clients must buffer.
                cut = min(7, len(raw) - 1)
                yield eventstream.event("PayloadPart", raw[:cut], "application/octet-stream")
                yield eventstream.event("PayloadPart", raw[cut:], "application/octet-stream")
            if fate.kind == "stream_error":
                yield eventstream.exception(
                    "ModelStreamError",
                    {"Message": "injected error in the middle of the stream", "ErrorCode": "ModelStreamError"},
                )
            elif messages_api:
                prompt = " ".join(str(m.get("content")) for m in body["messages"])
                usage = {"prompt_tokens": _prompt_tokens(prompt), "completion_tokens": fate.tokens}
                yield eventstream.event(
                    "PayloadPart",
                    f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode(),
                    "application/octet-stream",
                )

        return await _event_stream(
            request,
            messages(),
            **{"X-Amzn-SageMaker-Content-Type": "text/event-stream", "x-Amzn-Invoked-Production-Variant": "AllTraffic"},
        )

    return [
        web.post("/endpoints/{name}/invocations", invoke),
        web.post("/endpoints/{name}/invocations-response-stream", invoke_stream),
    ]


# --- Bedrock runtime ------------------------------------------------------------------


def _family_request(body: dict[str, Any]) -> tuple[str, str, int | None]:
    """(family, prompt, max tokens) of an InvokeModel body, from its shape."""
    if "messages" in body:
        parts: list[str] = []
        for message in body["messages"]:
            content = message.get("content")
            if isinstance(content, list):
                parts.extend(c.get("text", "") for c in content if isinstance(c, dict))
            else:
                parts.append(str(content))
        return "anthropic", " ".join(parts), body.get("max_tokens")
    if "inputText" in body:
        return "titan", body["inputText"], (body.get("textGenerationConfig") or {}).get("maxTokenCount")
    if "max_gen_len" in body:
        return "meta", body["prompt"], body["max_gen_len"]
    if "maxTokens" in body:
        return "ai21", body["prompt"], body["maxTokens"]
    if "p" in body or "k" in body or body.get("stream") is not None:
        return "cohere", body["prompt"], body.get("max_tokens")
    return "mistral", body.get("prompt", ""), body.get("max_tokens")


def _family_response(family: str, text: str, prompt_tokens: int, tokens: int) -> dict[str, Any]:
    if family == "anthropic":
        return {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": text}],
            "usage": {"input_tokens": prompt_tokens, "output_tokens": tokens},
        }
    if family == "titan":
        return {
            "inputTextTokenCount": prompt_tokens,
            "results": [{"tokenCount": tokens, "outputText": text, "completionReason": "LENGTH"}],
        }
    if family == "meta":
        return {"generation": text, "prompt_token_count": prompt_tokens, "generation_token_count": tokens}
    if family == "ai21":
        return {"completions": [{"data": {"text": text}}]}
    if family == "cohere":
        return {"generations": [{"text": text}]}
    return {"outputs": [{"text": text, "stop_reason": "length"}]}


def _family_chunk(family: str, piece: str) -> dict[str, Any]:
    if family == "anthropic":
        return {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
    if family == "titan":
        return {"outputText": piece, "index": 0}
    if family == "meta":
        return {"generation": piece}
    if family == "cohere":
        return {"text": piece, "is_finished": False}
    return {"outputs": [{"text": piece}]}


def bedrock_routes(behaviour: Behaviour) -> list[web.RouteDef]:
    def converse_prompt(body: dict[str, Any]) -> str:
        return " ".join(c.get("text", "") for m in body.get("messages", []) for c in m.get("content", []))

    async def converse(request: web.Request) -> web.StreamResponse:
        arrival = asyncio.get_running_loop().time()
        body = await request.json()
        fate = behaviour.fate((body.get("inferenceConfig") or {}).get("maxTokens"), prompt=converse_prompt(body))
        if (answer := _fault(fate, behaviour, "bedrock")) is not None:
            return answer
        text = await behaviour.wait_all(fate, arrival)
        prompt = _prompt_tokens(converse_prompt(body))
        return web.json_response(
            {
                "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": "max_tokens",
                "usage": {"inputTokens": prompt, "outputTokens": fate.tokens, "totalTokens": prompt + fate.tokens},
                "metrics": {"latencyMs": int((asyncio.get_running_loop().time() - arrival) * 1000)},
            }
        )

    async def converse_stream(request: web.Request) -> web.StreamResponse:
        arrival = asyncio.get_running_loop().time()
        body = await request.json()
        fate = behaviour.fate((body.get("inferenceConfig") or {}).get("maxTokens"), prompt=converse_prompt(body))
        if (answer := _fault(fate, behaviour, "bedrock")) is not None:
            return answer
        prompt = _prompt_tokens(converse_prompt(body))

        async def messages() -> AsyncIterator[bytes]:
            yield eventstream.json_event("messageStart", {"role": "assistant"})
            async for piece in behaviour.chunks(fate, arrival):
                yield eventstream.json_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
            if fate.kind == "stream_error":
                yield eventstream.exception(
                    "modelStreamErrorException",
                    {"message": "injected error in the middle of the stream", "originalStatusCode": 500},
                )
                return
            yield eventstream.json_event("contentBlockStop", {"contentBlockIndex": 0})
            yield eventstream.json_event("messageStop", {"stopReason": "max_tokens"})
            yield eventstream.json_event(
                "metadata",
                {
                    "usage": {"inputTokens": prompt, "outputTokens": fate.tokens, "totalTokens": prompt + fate.tokens},
                    "metrics": {"latencyMs": int((asyncio.get_running_loop().time() - arrival) * 1000)},
                },
            )

        return await _event_stream(request, messages())

    async def invoke(request: web.Request) -> web.StreamResponse:
        arrival = asyncio.get_running_loop().time()
        body = await request.json()
        if "embed" in request.match_info["model_id"] and "inputText" in body:  # Titan text embeddings
            fate = behaviour.fate(0)
            if (answer := _fault(fate, behaviour, "bedrock")) is not None:
                return answer
            await asyncio.sleep(behaviour.s.ttft_ms / 1000)
            text = str(body["inputText"])
            return web.json_response({"embedding": embedding_of(text), "inputTextTokenCount": _prompt_tokens(text)})
        family, prompt, limit = _family_request(body)
        fate = behaviour.fate(limit, prompt=prompt)
        if (answer := _fault(fate, behaviour, "bedrock")) is not None:
            return answer
        text = await behaviour.wait_all(fate, arrival)
        prompt_tokens = _prompt_tokens(prompt)
        return web.json_response(
            _family_response(family, text, prompt_tokens, fate.tokens),
            headers={
                "X-Amzn-Bedrock-Input-Token-Count": str(prompt_tokens),
                "X-Amzn-Bedrock-Output-Token-Count": str(fate.tokens),
            },
        )

    async def invoke_stream(request: web.Request) -> web.StreamResponse:
        arrival = asyncio.get_running_loop().time()
        family, prompt, limit = _family_request(await request.json())
        fate = behaviour.fate(limit, prompt=prompt)
        if (answer := _fault(fate, behaviour, "bedrock")) is not None:
            return answer

        def chunk(data: dict[str, Any]) -> bytes:
            return eventstream.json_event("chunk", {"bytes": base64.b64encode(json.dumps(data).encode()).decode()})

        async def messages() -> AsyncIterator[bytes]:
            async for piece in behaviour.chunks(fate, arrival):
                yield chunk(_family_chunk(family, piece))
            if fate.kind == "stream_error":
                yield eventstream.exception(
                    "modelStreamErrorException",
                    {"message": "injected error in the middle of the stream", "originalStatusCode": 500},
                )
                return
            latency_ms = int((asyncio.get_running_loop().time() - arrival) * 1000)
            yield chunk(
                {
                    "amazon-bedrock-invocationMetrics": {
                        "inputTokenCount": _prompt_tokens(prompt),
                        "outputTokenCount": fate.tokens,
                        "invocationLatency": latency_ms,
                        "firstByteLatency": int(behaviour.s.ttft_ms),
                    }
                }
            )

        return await _event_stream(request, messages(), **{"X-Amzn-Bedrock-Content-Type": "application/json"})

    return [
        web.post("/model/{model_id:.+}/converse", converse),
        web.post("/model/{model_id:.+}/converse-stream", converse_stream),
        web.post("/model/{model_id:.+}/invoke", invoke),
        web.post("/model/{model_id:.+}/invoke-with-response-stream", invoke_stream),
    ]
