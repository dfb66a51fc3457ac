"""What the SageMaker and Bedrock targets share: boto3 calls run in threads.

boto3 is synchronous, so every request runs in a daemon thread of its own (the runner
already bounds how many are in flight), which records into a private Recorder; the
request's own Recorder receives those timings only if the request was not given up
(timeout, Ctrl-C) in the meantime, so a late thread never changes a row already written
and a process exit never waits for one. A botocore ``before-send`` hook stamps the start
when the signed request is handed to the HTTP layer, as the HTTP targets stamp it when
the body is written. botocore's own retries are off: a retry fmb makes is counted in the row.
"""

from __future__ import annotations

import asyncio
import socket
import threading
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

THROTTLING_CODES = {
    "ThrottlingException",
    "TooManyRequestsException",
    "ServiceQuotaExceededException",
    "throttlingException",
    "Throttling",
}


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

    @classmethod
    def for_experiment(cls, exp: ResolvedExperiment, loaded: LoadedConfig, max_connections: int) -> Target:
        return cls(exp, loaded, max_connections)

    def __init__(self, exp: ResolvedExperiment, loaded: LoadedConfig, max_connections: int) -> None:
        from fmb.aws import client, session

        self.exp = exp
        self.backend = exp.backend
        self.session = session(loaded, exp.spec.region)
        self.client = client(
            self.service,
            loaded,
            exp.spec.region,
            max_connections=max_connections,
            read_timeout_s=exp.spec.request_timeout_s,
            boto_session=self.session,
        )
        self._local = threading.local()
        self.client.meta.events.register(f"before-send.{self.client.meta.service_model.service_name}", self._sent)

    def _sent(self, **_: Any) -> None:
        rec = getattr(self._local, "rec", None)
        if rec is not None:
            rec.start()

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
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Usage] = loop.create_future()
        cancel = threading.Event()
        own = Recorder()

        def report(outcome: Usage | BaseException) -> None:
            if done.done():
                return  # given up already
            rec.adopt(own)
            if isinstance(outcome, BaseException):
                done.set_exception(outcome)
            else:
                done.set_result(outcome)

        def work() -> None:
            try:
                outcome: Usage | BaseException = self._call(request, own, cancel)
            except BaseException as exc:  # handed to the event loop, which raises it in send()
                outcome = exc
            try:
                loop.call_soon_threadsafe(report, outcome)
            except RuntimeError:  # the event loop is closed: the run is over and nobody waits for this
                pass

        rec.start()  # until the thread reports, the request counts from here
        threading.Thread(target=work, daemon=True, name=f"fmb-{self.backend}").start()
        try:
            return await done
        except asyncio.CancelledError:
            cancel.set()  # the thread stops before sending, or at its next streamed event
            raise

    def _call(self, request: Request, rec: Recorder, cancel: threading.Event) -> Usage:
        if cancel.is_set():
            raise Cancelled
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

    @staticmethod
    def drain(stream: Any, cancel: threading.Event, handle: Any) -> None:
        """Read an event stream to its end, ``handle(event)`` for each; stop if the request is given up."""
        try:
            for event in stream:
                if cancel.is_set():
                    raise Cancelled
                handle(event)
        finally:
            stream.close()

    def invoke(self, request: Request, rec: Recorder, cancel: threading.Event) -> Usage:
        """Make the call (in a worker thread); raise Cancelled when ``cancel`` is set while streaming."""
        raise NotImplementedError
