"""The native APIs of inference containers (FMBench's EC2/EKS predictors), over HTTP.

TGI ``/generate`` and ``/generate_stream``, Triton ``/v2/models/<m>/generate`` and
``generate_stream``, DJL Serving ``/invocations``, Ollama ``/api/generate``, llama.cpp's
``/completion``, FMBench's custom REST predictor shape, and the Ray Serve route of
FMBench's EKS manifests. Each streams where its API can; the parameters come from the
experiment's inference parameter set, as in FMBench.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from fmb.collector.targets.base import EndpointError, Recorder, Request, Usage, as_int, http_error
from fmb.collector.targets.http import Chunk, HttpTarget, read_body
from fmb.config import ResolvedExperiment
from fmb.errors import CollectError

# FMBench keys a payload line may carry that are not inference parameters.
PAYLOAD_ONLY = {"question", "ground_truth", "base64_img"}


def _require_url(exp: ResolvedExperiment) -> str:
    url = exp.endpoint
    if not url or not url.startswith(("http://", "https://")):
        raise CollectError(
            f"experiment {exp.name!r}: back end {exp.backend} needs the container's URL in ep_name or endpoint_url "
            f"(got {url!r}).",
        )
    return url


def _stop_list(parameters: dict[str, Any]) -> dict[str, Any]:
    """TGI takes `stop` as a list; FMBench configs often give one string."""
    out = dict(parameters)
    if isinstance(out.get("stop"), str):
        out["stop"] = [out["stop"]]
    return out


def _details_usage(details: Any) -> Usage | None:
    """TGI's and DJL's generated token count, when details were asked for."""
    if isinstance(details, dict) and "generated_tokens" in details:
        return Usage(None, as_int(details["generated_tokens"]))
    return None


def tgi_chunk(data: dict[str, Any]) -> Chunk:
    """One streamed TGI (or DJL LMI) event: {token: {text, special}, details}."""
    if "error" in data:
        return Chunk(error=str(data["error"]))
    token = data.get("token") or {}
    text = None if token.get("special") else token.get("text")
    # TGI's last event carries the whole generated_text (and the details, when asked for).
    final = data.get("generated_text") is not None or data.get("details") is not None
    return Chunk(text, _details_usage(data.get("details")), final=final)


def tgi_whole(data: Any) -> Chunk:
    """A whole TGI/DJL response: [{generated_text, details}] or {generated_text}."""
    if isinstance(data, list):
        data = data[0]
    if "error" in data:
        return Chunk(error=str(data["error"]))
    return Chunk(data["generated_text"], _details_usage(data.get("details")))


class TGITarget(HttpTarget):
    """Hugging Face Text Generation Inference: {inputs, parameters} -> generated_text / token stream."""

    def __init__(self, exp: ResolvedExperiment, max_connections: int) -> None:
        base = re.sub(r"/(generate|generate_stream)/?$", "", _require_url(exp).rstrip("/"))
        super().__init__(exp, max_connections, base + ("/generate_stream" if exp.stream else "/generate"), exp.stream)
        self.parameters = _stop_list(exp.parameters)
        self.parameters.setdefault("details", True)  # the generated token count comes with the details

    def body(self, request: Request) -> dict[str, Any]:
        return {"inputs": request.prompt, "parameters": self.parameters}

    def chunk(self, data: Any) -> Chunk:
        return tgi_chunk(data)

    def whole(self, data: Any) -> Chunk:
        return tgi_whole(data)


class TritonTarget(HttpTarget):
    """Triton's generate extension: {text_input, ...parameters} -> text_output."""

    end_marker = False  # the stream just ends

    def __init__(self, exp: ResolvedExperiment, max_connections: int) -> None:
        base = re.sub(r"/(generate|generate_stream)/?$", "", _require_url(exp).rstrip("/"))
        super().__init__(exp, max_connections, base + ("/generate_stream" if exp.stream else "/generate"), exp.stream)

    def body(self, request: Request) -> dict[str, Any]:
        return {"text_input": request.prompt, **self.exp.parameters, "stream": self.stream}

    def chunk(self, data: Any) -> Chunk:
        if "error" in data:
            return Chunk(error=str(data["error"]))
        return Chunk(data.get("text_output"))

    def whole(self, data: Any) -> Chunk:
        return self.chunk(data) if "error" in data else Chunk(data["text_output"])


class DJLTarget(HttpTarget):
    """DJL Serving (LMI) /invocations: {inputs, parameters} -> generated_text; streamed as JSON lines."""

    framing = "json-lines"
    end_marker = False  # LMI's token lines just end

    def __init__(self, exp: ResolvedExperiment, max_connections: int) -> None:
        super().__init__(exp, max_connections, _require_url(exp), exp.stream)

    def body(self, request: Request) -> dict[str, Any]:
        return {"inputs": request.prompt, "parameters": self.exp.parameters, "stream": self.stream}

    def chunk(self, data: Any) -> Chunk:
        return tgi_chunk(data)  # DJL LMI streams TGI's token format as JSON lines

    def whole(self, data: Any) -> Chunk:
        return tgi_whole(data)


class OllamaTarget(HttpTarget):
    """Ollama /api/generate: {model, prompt, options} -> response; streamed as JSON lines."""

    framing = "json-lines"

    def __init__(self, exp: ResolvedExperiment, max_connections: int) -> None:
        super().__init__(exp, max_connections, _require_url(exp), exp.stream)

    def body(self, request: Request) -> dict[str, Any]:
        body = {k: v for k, v in self.exp.parameters.items() if k not in PAYLOAD_ONLY}
        body.setdefault("model", self.exp.spec.model_id or self.exp.spec.model_name)
        return body | {"prompt": request.prompt, "stream": self.stream}

    def chunk(self, data: Any) -> Chunk:
        if "error" in data:
            return Chunk(error=str(data["error"]))
        usage = None
        if data.get("done"):
            usage = Usage(as_int(data.get("prompt_eval_count")), as_int(data.get("eval_count")))
        done = bool(data.get("done"))
        return Chunk(data.get("response"), usage, done=done, final=done)

    def whole(self, data: Any) -> Chunk:
        if "error" not in data and "response" not in data:
            raise KeyError("response")
        return self.chunk(data)


class LlamaCppTarget(HttpTarget):
    """llama.cpp server's native /completion: {prompt, n_predict, ...} -> content."""

    RENAMED: ClassVar[dict[str, str]] = {"max_new_tokens": "n_predict", "max_tokens": "n_predict"}

    def __init__(self, exp: ResolvedExperiment, max_connections: int) -> None:
        super().__init__(exp, max_connections, _require_url(exp), exp.stream)
        self.parameters = {self.RENAMED.get(k, k): v for k, v in exp.parameters.items() if k not in PAYLOAD_ONLY}

    def body(self, request: Request) -> dict[str, Any]:
        return {"prompt": request.prompt, **self.parameters, "stream": self.stream}

    def chunk(self, data: Any) -> Chunk:
        if "error" in data:
            return Chunk(error=str(data["error"]))
        usage = None
        if data.get("stop"):
            usage = Usage(as_int(data.get("tokens_evaluated")), as_int(data.get("tokens_predicted")))
        stop = bool(data.get("stop"))
        return Chunk(data.get("content"), usage, done=stop, final=stop)

    def whole(self, data: Any) -> Chunk:
        if "error" not in data and "content" not in data:
            raise KeyError("content")
        return self.chunk(data)


class CustomRestTarget(HttpTarget):
    """FMBench's custom REST predictor: {model_id, prompt, ...parameters} with the configured headers."""

    def __init__(self, exp: ResolvedExperiment, max_connections: int) -> None:
        super().__init__(exp, max_connections, _require_url(exp), stream=False)

    def body(self, request: Request) -> dict[str, Any]:
        return {"model_id": self.exp.spec.inference_spec.model_id, "prompt": request.prompt, **self.exp.parameters}

    def whole(self, data: Any) -> Chunk:
        if "error" in data:
            return Chunk(error=str(data["error"]))
        usage = data.get("usage") or {}
        text = data["completions"][0]["text"]
        return Chunk(text, Usage(as_int(usage.get("prompt_tokens")), as_int(usage.get("completion_tokens"))))


def ray_serve_url(endpoint: str, prompt: str) -> str:
    """The GET URL that asks a Ray Serve route about ``prompt``.

    FMBench's EKS endpoints end in the query parameter that takes the prompt
    (``http://host/serve/infer?sentence=``): the last parameter without a value is filled
    in; when every parameter has one, the prompt goes in ``sentence``, as FMBench's
    rest_predictor.py sends it.
    """
    parts = urlsplit(endpoint)
    query = parse_qsl(parts.query, keep_blank_values=True)
    blanks = [i for i, (_, value) in enumerate(query) if value == ""]
    if blanks:
        query[blanks[-1]] = (query[blanks[-1]][0], prompt)
    else:
        query.append(("sentence", prompt))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def ray_serve_text(raw: bytes, prompt: str) -> str:
    """The generated text of a Ray Serve answer, without the prompt that these models echo.

    The route returns a JSON string, a JSON list of strings (a batch of one) or plain text.
    """
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = text
    if isinstance(data, list):
        data = "".join(str(item) for item in data)
    elif isinstance(data, dict):
        data = data.get("generated_text", data.get("text", text))
    answer = str(data)
    if prompt and answer.startswith(prompt):
        answer = answer[len(prompt) :]
    return answer.strip()


class RayServeTarget(HttpTarget):
    """A Ray Serve route (FMBench's EKS manifests): GET <route>?sentence=<prompt> -> the text.

    The model's parameters live in its Ray Serve application, not in the request (as in
    FMBench's eks_predictor.py and rest_predictor.py); the answer is never streamed.
    """

    def __init__(self, exp: ResolvedExperiment, max_connections: int) -> None:
        super().__init__(exp, max_connections, _require_url(exp), stream=False)
        self.headers.pop("Content-Type", None)  # a GET has no body

    async def send(self, request: Request, rec: Recorder) -> Usage:
        url = ray_serve_url(self.url, request.prompt)
        try:
            return await self._get(self.session, url, request.prompt, rec)
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
            # A kept-alive connection that the server had closed: nothing reached it, so send again.
            if rec.http_status is not None:
                raise
            rec.restart()
            return await self._get(self.fresh_session, url, request.prompt, rec)

    async def _get(self, session: aiohttp.ClientSession, url: str, prompt: str, rec: Recorder) -> Usage:
        rec.start()
        async with session.get(URL(url, encoded=True), headers=self.headers, trace_request_ctx=rec) as response:
            rec.http_status = response.status
            try:
                raw = await read_body(response)
            except aiohttp.ClientPayloadError as exc:
                raise EndpointError(
                    "protocol_error", f"the response body broke off ({exc})", http_status=response.status
                ) from None
            rec.finish()
            if response.status >= 400:
                raise http_error(response.status, raw.decode("utf-8", "replace"))
        rec.parts.append(ray_serve_text(raw, prompt))
        return Usage()
