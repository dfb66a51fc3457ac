"""What the SageMaker and Bedrock targets share: boto3 calls run in worker threads.

boto3 is synchronous, so every request runs in a thread of a pool as wide as the
concurrency, and reports to its Recorder from there (appending timestamps is safe from
one thread). A botocore ``before-send`` hook stamps the start when the signed request is
handed to the HTTP layer, as the HTTP targets stamp it when the body is written.
botocore's own retries are off: a retry fmb makes is counted in the row.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    NoCredentialsError,
    ReadTimeoutError,
)
from fmb.collector.targets.base import EndpointError, Recorder, Request, Target, Usage

from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.errors import CollectError

THROTTLING_CODES = {"ThrottlingException", "TooManyRequestsException", "ServiceQuotaExceededException",
                    "throttlingException", "Throttling"}


class Cancelled(Exception):
    """The request was given up (timeout or Ctrl-C) while its thread was still reading."""


def client_error(exc: ClientError) -> EndpointError:
    """An EndpointError for a botocore ClientError (including errors inside event streams)."""
    error = exc.response.get("Error", {})
    code = error.get("Code") or "ClientError"
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    message = error.get("Message") or str(exc)
    throttled = code in THROTTLING_CODES or status == 429
    return EndpointError(code, message, http_status=status, status="throttled" if throttled else "error")


class Boto3Target(Target):
    """A target whose requests are boto3 calls, made in worker threads."""

    service: str = ""

    def __init__(self, exp: ResolvedExperiment, loaded: LoadedConfig, max_connections: int) -> None:
        from fmb.aws import client, session

        self.exp = exp
        self.backend = exp.backend
        self.session = session(loaded, exp.spec.region)
        self.client = client(self.service, loaded, exp.spec.region, max_connections=max_connections,
                             read_timeout_s=exp.spec.request_timeout_s, boto_session=self.session)
        self.executor = ThreadPoolExecutor(max_workers=max_connections + 1, thread_name_prefix=f"fmb-{exp.backend}")
        self._local = threading.local()
        self.client.meta.events.register(f"before-send.{self.client.meta.service_model.service_name}", self._sent)

    def _sent(self, **_: Any) -> None:
        rec = getattr(self._local, "rec", None)
        if rec is not None:
            rec.start()

    async def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    def check_credentials(self) -> None:
        if self.session.get_credentials() is None:
            raise CollectError(
                f"experiment {self.exp.name!r}: no AWS credentials were found for {self.service}.",
                hint="Configure them as usual for AWS (environment, profile, role), or give "
                "-A aws_profile=NAME (or -A aws_access_key_id=... -A aws_secret_access_key=...).",
            )

    def check_connectable(self) -> None:
        """Can the service's endpoint be reached at all (a TCP connection)?"""
        url = urlsplit(self.client.meta.endpoint_url)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname, port), timeout=5).close()
        except OSError as exc:
            raise CollectError(
                f"experiment {self.exp.name!r}: cannot reach {self.client.meta.endpoint_url} ({exc}).",
                hint="Check the network, the region, and any endpoint override (-A ..._endpoint_url=...).",
            ) from None

    async def send(self, request: Request, rec: Recorder) -> Usage:
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, self._call, request, rec, cancel)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel.set()  # the thread stops reading at its next event
            raise

    def _call(self, request: Request, rec: Recorder, cancel: threading.Event) -> Usage:
        self._local.rec = rec
        try:
            rec.start()  # stamped again by the before-send hook
            return self.invoke(request, rec, cancel)
        except ClientError as exc:
            raise client_error(exc) from None
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise TimeoutError(str(exc)) from None
        except NoCredentialsError as exc:
            raise EndpointError("NoCredentialsError", str(exc)) from None
        except BotoCoreError as exc:
            raise EndpointError(type(exc).__name__, str(exc)) from None
        finally:
            self._local.rec = None
            rec.finish()

    def invoke(self, request: Request, rec: Recorder, cancel: threading.Event) -> Usage:
        """Make the call (in a worker thread); raise Cancelled when ``cancel`` is set while streaming."""
        raise NotImplementedError
