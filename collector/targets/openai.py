"""OpenAI-compatible chat and completions APIs (vLLM, TGI, llama.cpp, SGLang, ...)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fmb.collector.targets.base import Request, Usage, as_int
from fmb.collector.targets.http import Chunk, HttpTarget
from fmb.config import ResolvedExperiment

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


def openai_chunk(data: dict[str, Any], chat: bool) -> Chunk:
    """Text and usage of an OpenAI-style chat (delta or message) or completions document."""
    if "error" in data:
        return Chunk(error=str(data["error"]))
    text = ""
    final = False
    for choice in data.get("choices") or ():
        final = final or choice.get("finish_reason") is not None
        if chat:
            message = choice.get("delta") or choice.get("message")
            if message:
                reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
                text += (message.get("content") or "") + reasoning
        else:
            text += choice.get("text") or ""
    usage = data.get("usage")
    return Chunk(
        text,
        Usage(as_int(usage.get("prompt_tokens")), as_int(usage.get("completion_tokens"))) if usage else None,
        final=final,
    )


def openai_whole(data: dict[str, Any], chat: bool) -> Chunk:
    """A complete response, which must have choices (a 200 with another JSON body is not an answer)."""
    if "error" not in data and not isinstance(data.get("choices"), list):
        raise KeyError("choices")
    return openai_chunk(data, chat)


class OpenAITarget(HttpTarget):
    def __init__(self, exp: ResolvedExperiment, max_connections: int) -> None:
        assert exp.endpoint is not None
        super().__init__(exp, max_connections, endpoint_url(exp.endpoint, exp.backend), exp.stream)
        params = openai_parameters(exp.parameters)
        self.model = params.pop("model", None) or exp.spec.model_id or exp.spec.model_name or "default"
        self.params = params
        self.chat = exp.backend == "openai-chat"
        if self.stream:
            self.headers["Accept"] = "text/event-stream"

    def body(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model}
        if self.chat:
            body["messages"] = [{"role": "user", "content": request.prompt}]
        else:
            body["prompt"] = request.prompt
        body.update(self.params)
        body["stream"] = self.stream
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def chunk(self, data: Any) -> Chunk:
        return openai_chunk(data, self.chat)

    def whole(self, data: Any) -> Chunk:
        return openai_whole(data, self.chat)
