"""The mock's Amazon SageMaker runtime and Amazon Bedrock runtime APIs (rest-json, event streams).

boto3 clients pointed at the mock (``endpoint_url``) run their real code paths: SigV4
signing (not checked here), serialisation, error parsing and event-stream decoding.

SageMaker: ``InvokeEndpoint`` and ``InvokeEndpointWithResponseStream`` for TGI/DJL payloads
(``{inputs, parameters}``, streamed as TGI server-sent events inside ``PayloadPart``
events, split across parts), the messages API (OpenAI-style) and embeddings.
Bedrock: ``Converse``, ``ConverseStream``, ``InvokeModel`` and
``InvokeModelWithResponseStream`` for the model families fmb knows.

With ``cloudwatch_url`` set (``fmb mock-server --cloudwatch-url URL``, e.g. moto's server) the
mock publishes per-request CloudWatch metrics as the real services do, through boto3's
PutMetricData, from a thread that sends what the handlers recorded (never on the request
path): SageMaker (``AWS/SageMaker``; EndpointName, VariantName) Invocations,
InvocationsPerInstance, Invocation4XXErrors and Invocation5XXErrors (0 or 1 each request),
InvocationModelErrors, ModelLatency and OverheadLatency (microseconds); Bedrock
(``AWS/Bedrock``; ModelId) Invocations, InvocationLatency and TimeToFirstToken (ms),
InputTokenCount, OutputTokenCount, InvocationClientErrors, InvocationServerErrors and
InvocationThrottles (a throttled request is not an invocation). The region is the one the
request was signed for.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
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


# --- CloudWatch metrics -----------------------------------------------------------------

_SIGNED_REGION = re.compile(r"Credential=[^/,]+/\d{8}/([^/,]+)/")
PUT_LIMIT = 1000  # PutMetricData's limit of datums per call


def signed_region(request: web.Request) -> str:
    """The region a SigV4-signed request was signed for (us-east-1 when it says none)."""
    found = _SIGNED_REGION.search(request.headers.get("Authorization", ""))
    return found.group(1) if found else "us-east-1"


class CloudWatchPublisher:
    """Sends recorded metric values to a CloudWatch endpoint with PutMetricData, from a thread of its own.

    Handlers call :meth:`record`, which only appends; the thread wakes at once and sends
    everything recorded so far in as few calls as the API allows.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._pending: list[tuple[str, str, dict[str, Any]]] = []  # (region, namespace, datum)
        self._wake = threading.Condition()
        self._clients: dict[str, Any] = {}
        self._failed = False
        threading.Thread(target=self._run, daemon=True, name="fmb-mock-cloudwatch").start()

    def record(
        self, region: str, namespace: str, dimensions: dict[str, str], values: dict[str, tuple[float, str]]
    ) -> None:
        """``values``: metric name -> (value, CloudWatch unit), all at this moment."""
        now = datetime.now(UTC)
        dims = [{"Name": k, "Value": v} for k, v in sorted(dimensions.items())]
        data = [
            (region, namespace, {"MetricName": name, "Dimensions": dims, "Timestamp": now, "Value": v, "Unit": unit})
            for name, (v, unit) in values.items()
        ]
        with self._wake:
            self._pending += data
            self._wake.notify()

    def _run(self) -> None:
        self._client("us-east-1")  # loading botocore's models takes a while: not with the first requests
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
                batch, self._pending = self._pending, []
            groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for region, namespace, datum in batch:
                groups.setdefault((region, namespace), []).append(datum)
            for (region, namespace), data in groups.items():
                for offset in range(0, len(data), PUT_LIMIT):
                    self._put(region, namespace, data[offset : offset + PUT_LIMIT])

    def _client(self, region: str) -> Any:
        if region not in self._clients:
            import boto3

            self._clients[region] = boto3.client(
                "cloudwatch",
                region_name=region,
                endpoint_url=self.url,
                aws_access_key_id="fmb-mock",
                aws_secret_access_key="fmb-mock",
            )
        return self._clients[region]

    def _put(self, region: str, namespace: str, data: list[dict[str, Any]]) -> None:
        try:
            self._client(region).put_metric_data(Namespace=namespace, MetricData=data)
        except Exception as exc:  # the mock goes on serving; say it once
            if not self._failed:
                self._failed = True
                print(f"fmb mock server: PutMetricData to {self.url} failed ({exc})", file=sys.stderr, flush=True)
            time.sleep(0.1)


def publisher(behaviour: Behaviour) -> CloudWatchPublisher | None:
    """The behaviour's CloudWatch publisher (one per mock server), when ``cloudwatch_url`` is set."""
    url = behaviour.s.cloudwatch_url
    if not url:
        return None
    found = getattr(behaviour, "cloudwatch", None)
    if found is None:
        found = CloudWatchPublisher(url)
        behaviour.cloudwatch = found
    return found


Handler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]


def _sagemaker_metrics(behaviour: Behaviour, cloudwatch: CloudWatchPublisher, handler: Handler) -> Handler:
    """The handler, publishing SageMaker's metrics once it has answered (a stream: once it has ended)."""

    async def published(request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        arrival = loop.time()
        await request.read()  # kept by aiohttp for the handler
        overhead_us = (loop.time() - arrival) * 1_000_000
        response = await handler(request)
        model_us = (loop.time() - arrival) * 1_000_000 - overhead_us
        # A model's error status comes back as 424 ModelError; throttling as 429.
        status = behaviour.s.error_status if response.status == 424 else response.status
        values = {
            "Invocations": (1.0, "None"),
            "InvocationsPerInstance": (1.0, "None"),
            "Invocation4XXErrors": (float(400 <= status < 500), "None"),
            "Invocation5XXErrors": (float(status >= 500), "None"),
            "InvocationModelErrors": (float(response.status == 424), "None"),
            "OverheadLatency": (overhead_us, "Microseconds"),
        }
        if response.status in (200, 424):
            values["ModelLatency"] = (model_us, "Microseconds")
        variant = request.headers.get("X-Amzn-SageMaker-Target-Variant") or "AllTraffic"
        dimensions = {"EndpointName": request.match_info["name"], "VariantName": variant}
        cloudwatch.record(signed_region(request), "AWS/SageMaker", dimensions, values)
        return response

    return published


def _bedrock_metrics(cloudwatch: CloudWatchPublisher, handler: Handler) -> Handler:
    """The handler, publishing Bedrock's metrics once it has answered; the handler leaves its token
    counts in ``request["tokens"]`` and a stream the time of its first token in ``request["first_token"]``."""

    async def published(request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        arrival = loop.time()
        response = await handler(request)
        latency_ms = (loop.time() - arrival) * 1000
        values: dict[str, tuple[float, str]] = {}
        if response.status == 429:
            values["InvocationThrottles"] = (1.0, "Count")
        else:
            values["Invocations"] = (1.0, "Count")
            if response.status >= 500:
                values["InvocationServerErrors"] = (1.0, "Count")
            elif response.status >= 400:
                values["InvocationClientErrors"] = (1.0, "Count")
            else:
                values["InvocationLatency"] = (latency_ms, "Milliseconds")
            if "first_token" in request:
                values["TimeToFirstToken"] = ((request["first_token"] - arrival) * 1000, "Milliseconds")
            if "tokens" in request:
                values["InputTokenCount"] = (float(request["tokens"][0]), "Count")
                values["OutputTokenCount"] = (float(request["tokens"][1]), "Count")
        cloudwatch.record(signed_region(request), "AWS/Bedrock", {"ModelId": request.match_info["model_id"]}, values)
        return response

    return published


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

    handlers: dict[str, Handler] = {"invocations": invoke, "invocations-response-stream": invoke_stream}
    cloudwatch = publisher(behaviour)
    if cloudwatch is not None:
        handlers = {path: _sagemaker_metrics(behaviour, cloudwatch, handler) for path, handler in handlers.items()}
    return [web.post(f"/endpoints/{{name}}/{path}", handler) for path, handler in handlers.items()]


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
        request["tokens"] = (prompt, fate.tokens)
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
                request.setdefault("first_token", asyncio.get_running_loop().time())
                yield eventstream.json_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
            if fate.kind == "stream_error":
                yield eventstream.exception(
                    "modelStreamErrorException",
                    {"message": "injected error in the middle of the stream", "originalStatusCode": 500},
                )
                return
            yield eventstream.json_event("contentBlockStop", {"contentBlockIndex": 0})
            yield eventstream.json_event("messageStop", {"stopReason": "max_tokens"})
            request["tokens"] = (prompt, fate.tokens)
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
            request["tokens"] = (_prompt_tokens(text), 0)
            return web.json_response({"embedding": embedding_of(text), "inputTextTokenCount": _prompt_tokens(text)})
        family, prompt, limit = _family_request(body)
        fate = behaviour.fate(limit, prompt=prompt)
        if (answer := _fault(fate, behaviour, "bedrock")) is not None:
            return answer
        text = await behaviour.wait_all(fate, arrival)
        prompt_tokens = _prompt_tokens(prompt)
        request["tokens"] = (prompt_tokens, fate.tokens)
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
                request.setdefault("first_token", asyncio.get_running_loop().time())
                yield chunk(_family_chunk(family, piece))
            if fate.kind == "stream_error":
                yield eventstream.exception(
                    "modelStreamErrorException",
                    {"message": "injected error in the middle of the stream", "originalStatusCode": 500},
                )
                return
            latency_ms = int((asyncio.get_running_loop().time() - arrival) * 1000)
            request["tokens"] = (_prompt_tokens(prompt), fate.tokens)
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

    handlers: dict[str, Handler] = {"converse": converse, "converse-stream": converse_stream, "invoke": invoke}
    handlers["invoke-with-response-stream"] = invoke_stream
    cloudwatch = publisher(behaviour)
    if cloudwatch is not None:
        handlers = {path: _bedrock_metrics(cloudwatch, handler) for path, handler in handlers.items()}
    return [web.post(f"/model/{{model_id:.+}}/{path}", handler) for path, handler in handlers.items()]
