"""boto3 clients for the AWS services fmb uses, configured from the config and `-A`.

Endpoints and credentials may come from `-A` (so that an FMBench config runs unchanged
against other endpoints, e.g. local test servers): ``aws_endpoint_url`` for every
service, or ``sagemaker_endpoint_url``, ``sagemaker_runtime_endpoint_url``,
``bedrock_runtime_endpoint_url``, ``s3_endpoint_url``, ``cloudwatch_endpoint_url`` for one; ``aws_profile``,
``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``. Otherwise boto3's
usual chain applies (environment, ``AWS_ENDPOINT_URL_*``, profiles, instance roles).
Credentials given with `-A` are never written anywhere.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from fmb.config import LoadedConfig
from fmb.storage import boto_session

_SERVICE_KEYS = {
    "sagemaker": "sagemaker_endpoint_url",
    "sagemaker-runtime": "sagemaker_runtime_endpoint_url",
    "bedrock-runtime": "bedrock_runtime_endpoint_url",
    "bedrock": "bedrock_endpoint_url",
    "s3": "s3_endpoint_url",
    "cloudwatch": "cloudwatch_endpoint_url",
}


def region_of(loaded: LoadedConfig, experiment_region: str | None = None) -> str:
    return experiment_region or loaded.config.aws.region or "us-east-1"


def session(loaded: LoadedConfig, region: str | None = None) -> boto3.Session:
    session: boto3.Session = boto_session(loaded.assignments, region_of(loaded, region))
    return session


def client(
    service: str,
    loaded: LoadedConfig,
    region: str | None = None,
    *,
    max_connections: int = 10,
    read_timeout_s: float = 60,
    boto_session: boto3.Session | None = None,
) -> Any:
    """A client with fmb's settings: no hidden retries (fmb counts its own), pools sized for the concurrency."""
    values = loaded.assignments
    endpoint = values.get(_SERVICE_KEYS.get(service, "")) or values.get("aws_endpoint_url")
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=max(max_connections, 10),
        read_timeout=read_timeout_s,
        connect_timeout=min(read_timeout_s, 10),
        user_agent_extra="fmb",
    )
    boto_session = boto_session or session(loaded)
    # The service is named at run time; boto3-stubs (which dbt-athena installs) types only literal names.
    make_client: Any = boto_session.client
    return make_client(service, region_name=region_of(loaded, region), endpoint_url=endpoint, config=config)
