"""Amazon SageMaker endpoints: InvokeEndpoint and InvokeEndpointWithResponseStream.

Bodies as FMBench's SageMaker predictor sends them: TGI/DJL ``{inputs, parameters}``,
the messages API (``use_messages_api_format``) or, for embedding models
(``container_type: huggingface``), ``{text_inputs, mode: embedding}``. A streamed
response is TGI-style server-sent events or DJL JSON lines split across ``PayloadPart``
events at arbitrary bytes, so lines are rebuilt before they are read.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from botocore.exceptions import ClientError
from fmb.collector.targets.aws import Boto3Target, Cancelled
from fmb.collector.targets.base import EndpointError, Recorder, Request, Usage

from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.errors import CollectError


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_line(line: bytes) -> tuple[str | None, Usage | None]:
    """Text and usage of one streamed line (TGI `data:{...}`, DJL `{...}`, or OpenAI-style)."""
    text = line.decode("utf-8", "replace").strip()
    if text.startswith("data:"):
        text = text[5:].strip()
    if not text or text == "[DONE]" or not text.startswith("{"):
        return None, None
    data = json.loads(text)
    if "error" in data:
        raise EndpointError("stream_error", str(data["error"])[:300])
    usage = None
    if isinstance(data.get("details"), dict) and "generated_tokens" in data["details"]:
        usage = Usage(None, _int(data["details"]["generated_tokens"]))
    if isinstance(data.get("usage"), dict):
        usage = Usage(_int(data["usage"].get("prompt_tokens")), _int(data["usage"].get("completion_tokens")))
    token = data.get("token")
    if isinstance(token, dict):
        return (None if token.get("special") else token.get("text")), usage
    choices = data.get("choices")
    if choices:
        delta = choices[0].get("delta") or {}
        return delta.get("content"), usage
    if isinstance(data.get("outputs"), list) and data["outputs"]:
        return str(data["outputs"][0]), usage
    return None, usage


def parse_whole(data: Any) -> tuple[str, Usage | None]:
    if isinstance(data, list):
        data = data[0] if data else {}
    if "embedding" in data or "embeddings" in data:
        return "", Usage(None, 0)
    if data.get("choices"):
        usage = data.get("usage") or {}
        return (data["choices"][0].get("message") or {}).get("content") or "", Usage(
            _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")))
    details = data.get("details") or {}
    usage = Usage(None, _int(details.get("generated_tokens"))) if "generated_tokens" in details else None
    if "generated_text" in data:
        return data["generated_text"] or "", usage
    if isinstance(data.get("outputs"), list):
        return "".join(map(str, data["outputs"])), usage
    raise KeyError("generated_text")


class SageMakerTarget(Boto3Target):
    service = "sagemaker-runtime"

    def __init__(self, exp: ResolvedExperiment, loaded: LoadedConfig, max_connections: int) -> None:
        super().__init__(exp, loaded, max_connections)
        self.loaded = loaded
        self.endpoint_name = exp.endpoint or ""
        self.embedding = exp.spec.inference_spec.container_type == "huggingface"
        self.stream = exp.stream and not self.embedding
        self.messages_api = bool(exp.spec.use_messages_api_format)

    def describe(self) -> str:
        return self.endpoint_name

    async def check_reachable(self) -> None:
        from fmb.aws import client

        self.check_credentials()
        control = client("sagemaker", self.loaded, self.exp.spec.region, boto_session=self.session)
        try:
            status = control.describe_endpoint(EndpointName=self.endpoint_name)["EndpointStatus"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if "AccessDenied" in code:
                return  # allowed to invoke but not to describe: the first request will tell
            raise CollectError(
                f"experiment {self.exp.name!r}: SageMaker endpoint {self.endpoint_name!r} cannot be used "
                f"({code}: {exc.response.get('Error', {}).get('Message', exc)}).",
                hint="Check ep_name and the region, or deploy it with deploy: yes.",
            ) from None
        except Exception as exc:  # connection problems of every kind
            raise CollectError(f"experiment {self.exp.name!r}: cannot reach SageMaker ({exc}).") from None
        if status != "InService":
            raise CollectError(
                f"experiment {self.exp.name!r}: SageMaker endpoint {self.endpoint_name!r} is {status}, not InService.",
            )

    def body(self, request: Request) -> dict[str, Any]:
        if self.embedding:
            return {"text_inputs": request.prompt, "mode": "embedding"}
        if self.messages_api:
            body = {"messages": [{"role": "user", "content": request.prompt}], **self.exp.parameters}
        else:
            body = {"inputs": request.prompt, "parameters": self.exp.parameters}
        if self.stream:
            body["stream"] = True
        return body

    def invoke(self, request: Request, rec: Recorder, cancel: threading.Event) -> Usage:
        body = json.dumps(self.body(request)).encode()
        kwargs: dict[str, Any] = {"EndpointName": self.endpoint_name, "Body": body, "ContentType": "application/json"}
        if self.exp.spec.production_variant_name:
            kwargs["TargetVariant"] = self.exp.spec.production_variant_name
        if not self.stream:
            response = self.client.invoke_endpoint(**kwargs)
            raw = response["Body"].read()
            rec.finish()
            try:
                text, usage = parse_whole(json.loads(raw))
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                raise EndpointError("bad_response", f"unexpected response: {raw[:200]!r}") from None
            rec.parts.append(text)
            return usage or Usage()
        response = self.client.invoke_endpoint_with_response_stream(**kwargs)
        rec.http_status = response["ResponseMetadata"]["HTTPStatusCode"]
        usage = None
        buffer = b""
        events = response["Body"]
        try:
            for event in events:
                if cancel.is_set():
                    raise Cancelled
                part = event.get("PayloadPart")
                if not part:
                    continue
                buffer += part["Bytes"]
                *lines, buffer = buffer.split(b"\n")
                texts = []
                for line in lines:
                    text, line_usage = parse_line(line)
                    texts.append(text or "")
                    usage = line_usage or usage
                rec.content("".join(texts))
            text, line_usage = parse_line(buffer)
            rec.content(text)
            usage = line_usage or usage
        except ValueError as exc:
            raise EndpointError("stream_error", f"unreadable streamed line ({exc})") from None
        finally:
            events.close()
        rec.finish()
        return usage or Usage()
