"""Amazon Bedrock: Converse and ConverseStream, and InvokeModel(WithResponseStream) per model family.

The model is the experiment's ``ep_name``: an on-demand model id, a cross-region
inference profile id (``us.meta...``) or a provisioned throughput ARN. Converse serves
most families; InvokeModel is used for the families it lacks (AI21 Jurassic-2, Cohere
Command text) or when ``bedrock_api: invoke-model`` asks for it, with the family's own
body, read from the ``model_id`` (for an ARN) or the model itself.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fmb.collector.targets.aws import Boto3Target
from fmb.collector.targets.base import EndpointError, Recorder, Request, Usage, as_int, with_output_limit
from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.errors import CollectError
from fmb.pricing import base_model

# FMBench's bedrock parameter set keys, as Converse's inferenceConfig calls them.
INFERENCE_CONFIG = {
    "max_tokens": "maxTokens",
    "max_new_tokens": "maxTokens",
    "temperature": "temperature",
    "top_p": "topP",
    "stop": "stopSequences",
    "stop_sequences": "stopSequences",
}
NOT_SENT = {"caching", "stream", "question", "ground_truth"}
INVOKE_MODEL_FAMILIES = ("ai21.j2", "cohere.command-text", "cohere.command-light-text")


@dataclass(frozen=True)
class Family:
    """How one model family's InvokeModel body and response read."""

    body: Callable[[str, dict[str, Any]], dict[str, Any]]
    text: Callable[[dict[str, Any]], str]
    chunk_text: Callable[[dict[str, Any]], str | None]


def _max(params: dict[str, Any], default: int = 512) -> int:
    return int(params.get("max_tokens") or params.get("max_new_tokens") or default)


FAMILIES: dict[str, Family] = {
    "meta": Family(
        lambda p, k: {
            "prompt": p,
            "max_gen_len": _max(k),
            "temperature": k.get("temperature", 0.5),
            "top_p": k.get("top_p", 0.9),
        },
        lambda d: d["generation"],
        lambda d: d.get("generation"),
    ),
    "amazon.titan-text": Family(
        lambda p, k: {
            "inputText": p,
            "textGenerationConfig": {
                "maxTokenCount": _max(k),
                "temperature": k.get("temperature", 0.5),
                "topP": k.get("top_p", 0.9),
            },
        },
        lambda d: d["results"][0]["outputText"],
        lambda d: d.get("outputText"),
    ),
    "mistral": Family(
        lambda p, k: {
            "prompt": p,
            "max_tokens": _max(k),
            "temperature": k.get("temperature", 0.5),
            "top_p": k.get("top_p", 0.9),
        },
        lambda d: d["outputs"][0]["text"],
        lambda d: (d.get("outputs") or [{}])[0].get("text"),
    ),
    "cohere.command": Family(
        lambda p, k: {
            "prompt": p,
            "max_tokens": _max(k),
            "temperature": k.get("temperature", 0.5),
            "p": k.get("top_p", 0.9),
        },
        lambda d: d["generations"][0]["text"],
        lambda d: d.get("text"),
    ),
    "ai21.j2": Family(
        lambda p, k: {
            "prompt": p,
            "maxTokens": _max(k),
            "temperature": k.get("temperature", 0.5),
            "topP": k.get("top_p", 0.9),
        },
        lambda d: d["completions"][0]["data"]["text"],
        lambda d: None,
    ),
    "anthropic": Family(
        lambda p, k: {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": _max(k),
            "temperature": k.get("temperature", 0.5),
            "top_p": k.get("top_p", 0.9),
            "messages": [{"role": "user", "content": [{"type": "text", "text": p}]}],
        },
        lambda d: "".join(c.get("text", "") for c in d["content"]),
        lambda d: (d.get("delta") or {}).get("text") if d.get("type") == "content_block_delta" else None,
    ),
}


def family_of(model: str) -> Family | None:
    model = base_model(model)
    for prefix, family in FAMILIES.items():
        if model.startswith(prefix):
            return family
    return None


class BedrockTarget(Boto3Target):
    service = "bedrock-runtime"

    def __init__(self, exp: ResolvedExperiment, loaded: LoadedConfig, max_connections: int) -> None:
        super().__init__(exp, loaded, max_connections)
        self.model = exp.endpoint or exp.spec.model_id or exp.name
        self.stream = exp.stream
        known_as = exp.spec.model_id if self.model.startswith("arn:") and exp.spec.model_id else self.model
        api = exp.spec.bedrock_api or (
            "invoke-model" if base_model(known_as).startswith(INVOKE_MODEL_FAMILIES) else "converse"
        )
        self.family = family_of(known_as) if api == "invoke-model" else None
        if api == "invoke-model" and self.family is None:
            raise CollectError(
                f"experiment {exp.name!r}: fmb knows no InvokeModel body for {known_as!r} "
                f"(families: {', '.join(FAMILIES)}); use bedrock_api: converse.",
            )
        if self.family is FAMILIES["ai21.j2"]:
            self.stream = False  # Jurassic-2 does not stream
        params = {k: v for k, v in exp.parameters.items() if k not in NOT_SENT}
        self.inference_config = {INFERENCE_CONFIG[k]: v for k, v in params.items() if k in INFERENCE_CONFIG}
        if isinstance(self.inference_config.get("stopSequences"), str):
            self.inference_config["stopSequences"] = [self.inference_config["stopSequences"]]
        self.additional = {k: v for k, v in params.items() if k not in INFERENCE_CONFIG}
        self.params = params

    def describe(self) -> str:
        return self.model

    async def check_reachable(self) -> None:
        self.check_credentials()
        self.check_connectable()

    def invoke(self, request: Request, rec: Recorder, cancel: threading.Event) -> Usage:
        if self.family is not None:
            return self._invoke_model(request, rec, cancel)
        kwargs: dict[str, Any] = {
            "modelId": self.model,
            "messages": [{"role": "user", "content": [{"text": request.prompt}]}],
        }
        config = dict(self.inference_config or {})
        if request.max_output_tokens is not None:
            config["maxTokens"] = request.max_output_tokens  # a trace's output length
        if config:
            kwargs["inferenceConfig"] = config
        if self.additional:
            kwargs["additionalModelRequestFields"] = self.additional
        if not self.stream:
            response = self.client.converse(**kwargs)
            rec.finish()
            rec.http_status = response["ResponseMetadata"]["HTTPStatusCode"]
            rec.parts.append("".join(c.get("text", "") for c in response["output"]["message"]["content"]))
            usage = response.get("usage") or {}
            return Usage(as_int(usage.get("inputTokens")), as_int(usage.get("outputTokens")))
        response = self.client.converse_stream(**kwargs)
        rec.http_status = response["ResponseMetadata"]["HTTPStatusCode"]
        usage = [Usage()]

        def handle(event: dict[str, Any]) -> None:
            if "contentBlockDelta" in event:
                rec.content(event["contentBlockDelta"]["delta"].get("text"))
            elif "metadata" in event:
                meta = event["metadata"].get("usage") or {}
                usage[0] = Usage(as_int(meta.get("inputTokens")), as_int(meta.get("outputTokens")))

        self.drain(response["stream"], cancel, handle)
        rec.finish()
        return usage[0]

    def _invoke_model(self, request: Request, rec: Recorder, cancel: threading.Event) -> Usage:
        assert self.family is not None
        body = json.dumps(with_output_limit(self.family.body(request.prompt, self.params), request))
        if not self.stream:
            response = self.client.invoke_model(
                modelId=self.model, body=body, contentType="application/json", accept="application/json"
            )
            raw = response["body"].read()
            rec.finish()
            rec.http_status = response["ResponseMetadata"]["HTTPStatusCode"]
            try:
                rec.parts.append(self.family.text(json.loads(raw)))
            except (ValueError, KeyError, IndexError, TypeError):
                raise EndpointError("bad_response", f"unexpected response: {raw[:200]!r}") from None
            headers = response["ResponseMetadata"].get("HTTPHeaders", {})
            return Usage(
                as_int(headers.get("x-amzn-bedrock-input-token-count")),
                as_int(headers.get("x-amzn-bedrock-output-token-count")),
            )
        response = self.client.invoke_model_with_response_stream(
            modelId=self.model, body=body, contentType="application/json"
        )
        rec.http_status = response["ResponseMetadata"]["HTTPStatusCode"]
        usage = [Usage()]
        family = self.family

        def handle(event: dict[str, Any]) -> None:
            if "chunk" not in event:
                return
            data = json.loads(event["chunk"]["bytes"])
            metrics = data.get("amazon-bedrock-invocationMetrics")
            if metrics:
                usage[0] = Usage(as_int(metrics.get("inputTokenCount")), as_int(metrics.get("outputTokenCount")))
            rec.content(family.chunk_text(data))

        try:
            self.drain(response["body"], cancel, handle)
        except ValueError as exc:
            raise EndpointError("stream_error", f"unreadable streamed chunk ({exc})") from None
        rec.finish()
        return usage[0]
