"""Local servers that speak the AWS protocols, for tests without an AWS account.

- moto's server for the SageMaker control plane (and S3), in a thread of the test process;
- fmb's mock endpoint (a child process) for the SageMaker and Bedrock runtimes;
- a pass-through to moto that reports SageMaker endpoints whose name contains
  ``will-fail`` as Failed with a FailureReason, which moto itself never does.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing-secret-key-0123456789"}
FAILURE_REASON = "CannotStartContainerError: the primary container did not pass the ping health check"


@contextmanager
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def sagemaker_client(url: str, region: str = "us-east-1") -> Any:
    return boto3.client("sagemaker", region_name=region, endpoint_url=url, **CREDENTIALS)


def created_resources(url: str) -> dict[str, list[str]]:
    sm = sagemaker_client(url)
    return {
        "endpoints": sorted(e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]),
        "endpoint_configs": sorted(c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]),
        "models": sorted(m["ModelName"] for m in sm.list_models()["Models"]),
    }


def bring_endpoint(url: str, name: str) -> None:
    """An endpoint that exists before fmb runs (deploy: no)."""
    sm = sagemaker_client(url)
    sm.create_model(
        ModelName=f"{name}-model",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/brought",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/brought:1"},
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{name}-model",
                "InstanceType": "ml.g4dn.xlarge",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")


@contextmanager
def failing_sagemaker(upstream: str) -> Iterator[str]:
    """moto, except that DescribeEndpoint says Failed (with a reason) for names containing `will-fail`."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("X-Amz-Target") == "SageMaker.DescribeEndpoint":
                name = json.loads(body)["EndpointName"]
                if "will-fail" in name:
                    now = datetime.now(UTC).timestamp()
                    self._answer(
                        200,
                        json.dumps(
                            {
                                "EndpointName": name,
                                "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name}",
                                "EndpointConfigName": name,
                                "EndpointStatus": "Failed",
                                "FailureReason": FAILURE_REASON,
                                "CreationTime": now,
                                "LastModifiedTime": now,
                            }
                        ).encode(),
                    )
                    return
            request = urllib.request.Request(
                upstream + self.path,
                data=body,
                method="POST",
                headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
            )
            try:
                with urllib.request.urlopen(request) as response:
                    self._answer(response.status, response.read(), response.headers.get("Content-Type"))
            except urllib.error.HTTPError as error:
                self._answer(error.code, error.read(), error.headers.get("Content-Type"))

        def _answer(self, status: int, payload: bytes, content_type: str | None = "application/x-amz-json-1.1") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type or "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


JUMPSTART_BUCKET = "jumpstart-cache-prod-us-east-1"
JUMPSTART_IMAGE = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:2.1-tgi2.0-gpu-py310-cu121"
)


def seed_jumpstart(url: str, model_ids: list[str]) -> None:
    """JumpStart's model manifest and minimal specs in moto's S3, where the SageMaker SDK reads them."""
    from sagemaker.jumpstart.accessors import JumpStartModelsAccessor

    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=url, **CREDENTIALS)
    with suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=JUMPSTART_BUCKET)
    manifest = [
        {
            "model_id": m,
            "version": "1.0.0",
            "min_version": "2.0.0",
            "spec_key": f"community_models/{m}/specs_v1.0.0.json",
        }
        for m in model_ids
    ]
    s3.put_object(Bucket=JUMPSTART_BUCKET, Key="models_manifest.json", Body=json.dumps(manifest))
    for model_id in model_ids:
        spec = {
            "model_id": model_id,
            "version": "1.0.0",
            "min_sdk_version": "2.0.0",
            "training_supported": False,
            "hosting_use_script_uri": False,
            "hosting_prepacked_artifact_key": f"{model_id}/artifacts/inference-prepack/v1.0.0/",
            "hosting_instance_type_variants": {
                "variants": {
                    family: {"properties": {"image_uri": JUMPSTART_IMAGE}} for family in ("g4dn", "g5", "inf2", "p4d")
                }
            },
            "inference_environment_variables": [
                {
                    "name": "SM_NUM_GPUS",
                    "type": "text",
                    "default": "1",
                    "scope": "container",
                    "required_for_model_class": True,
                }
            ],
            "default_inference_instance_type": "ml.g4dn.xlarge",
            "predictor_specs": {
                "default_content_type": "application/json",
                "supported_content_types": ["application/json"],
                "default_accept_type": "application/json",
                "supported_accept_types": ["application/json"],
            },
        }
        s3.put_object(
            Bucket=JUMPSTART_BUCKET, Key=manifest[model_ids.index(model_id)]["spec_key"], Body=json.dumps(spec)
        )
    JumpStartModelsAccessor.reset_cache()
