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

from fmb.collector.targets.aws import Boto3Target
from fmb.collector.targets.base import EndpointError, Recorder, Request, Usage, with_output_limit
from fmb.collector.targets.containers import tgi_chunk, tgi_whole
from fmb.collector.targets.http import Chunk
from fmb.collector.targets.openai import openai_chunk
from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.errors import CollectError


def parse_line(line: bytes) -> Chunk:
    """One streamed line: TGI's `data:{token...}`, DJL's `{token...}`, or the messages API's `data: {choices...}`."""
    text = line.decode("utf-8", "replace").strip()
    if text.startswith("data:"):
        text = text[5:].strip()
    if not text or text == "[DONE]" or not text.startswith("{"):
        return Chunk()
    data = json.loads(text)
    return openai_chunk(data, chat=True) if "choices" in data else tgi_chunk(data)


def parse_whole(data: Any) -> Chunk:
    """A whole response: TGI/DJL generated_text, the messages API's choices, or an embedding."""
    if isinstance(data, dict) and ("embedding" in data or "embeddings" in data):
        return Chunk("", Usage(None, 0))
    if isinstance(data, dict) and "choices" in data:
        return openai_chunk(data, chat=True)
    whole = tgi_whole(data)
    if whole.text is None and not whole.error:
        raise KeyError("generated_text")
    return whole


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
        body = json.dumps(with_output_limit(self.body(request), request)).encode()
        kwargs: dict[str, Any] = {"EndpointName": self.endpoint_name, "Body": body, "ContentType": "application/json"}
        if self.exp.spec.production_variant_name:
            kwargs["TargetVariant"] = self.exp.spec.production_variant_name
        if not self.stream:
            response = self.client.invoke_endpoint(**kwargs)
            raw = response["Body"].read()
            rec.finish()
            rec.http_status = response["ResponseMetadata"]["HTTPStatusCode"]
            try:
                whole = parse_whole(json.loads(raw))
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                raise EndpointError("bad_response", f"unexpected response: {raw[:200]!r}") from None
            if whole.error:
                raise EndpointError("response_error", whole.error[:300], http_status=rec.http_status)
            rec.parts.append(whole.text or "")
            return whole.usage or Usage()
        response = self.client.invoke_endpoint_with_response_stream(**kwargs)
        rec.http_status = response["ResponseMetadata"]["HTTPStatusCode"]
        state: dict[str, Any] = {"buffer": b"", "usage": None}

        def read(lines: list[bytes]) -> None:
            texts = []
            for line in lines:
                chunk = parse_line(line)
                if chunk.error:
                    raise EndpointError("stream_error", chunk.error[:300], http_status=rec.http_status)
                texts.append(chunk.text or "")
                state["usage"] = chunk.usage or state["usage"]
            rec.content("".join(texts))

        def handle(event: dict[str, Any]) -> None:
            part = event.get("PayloadPart")
            if part:  # parts do not follow line boundaries: complete lines are read, the rest waits
                *lines, state["buffer"] = (state["buffer"] + part["Bytes"]).split(b"\n")
                read(lines)

        try:
            self.drain(response["Body"], cancel, handle)
            read([state["buffer"]])
        except ValueError as exc:
            raise EndpointError("stream_error", f"unreadable streamed line ({exc})") from None
        rec.finish()
        return state["usage"] or Usage()
