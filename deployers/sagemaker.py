"""Amazon SageMaker endpoints: stood up from FMBench's deployment_script values, taken down exactly.

``jumpstart.py`` deploys a JumpStart model (``model_id``, ``model_version``,
``accept_eula``) through the SageMaker SDK (fmb's ``sagemaker`` extra).
``deploy_w_hf_tgi.py``, ``deploy_w_djl_serving.py`` and ``sagemaker_deploy.py`` deploy
the experiment's container image (``image_uri``) with its ``env`` through boto3: a
model, an endpoint config and an endpoint. Every resource is recorded the moment it is
created, so a crash while waiting still leaves a record that ``fmb cleanup`` can use.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.markup import escape

from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.deployers.base import DeployContext, DeployPlan
from fmb.deployers.registry import Deployment
from fmb.errors import FmbError

CONTAINER_SCRIPTS = {"deploy_w_hf_tgi.py", "deploy_w_djl_serving.py", "sagemaker_deploy.py"}
JUMPSTART_SCRIPT = "jumpstart.py"
POLL_S = 15.0


def resource_name(base: str, now: datetime | None = None) -> str:
    """A SageMaker-valid, unique name: letters, digits and hyphens, at most 63 characters."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    clean = re.sub(r"[^A-Za-z0-9-]+", "-", base).strip("-") or "fmb"
    return f"{clean[: 62 - len(stamp)]}-{stamp}"


def _message(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code')}: {error.get('Message')}"
    return str(exc)


def _control(loaded: LoadedConfig, exp: ResolvedExperiment) -> Any:
    from fmb.aws import client

    return client("sagemaker", loaded, exp.spec.region)


def _create_from_image(
    sm: Any, loaded: LoadedConfig, exp: ResolvedExperiment, name: str, record: Callable[[dict[str, str]], None]
) -> None:
    spec = exp.spec
    if not spec.image_uri or spec.image_uri == "None":
        raise FmbError(f"experiment {exp.name!r}: {spec.deployment_script} needs image_uri (the container image).")
    if not spec.instance_type:
        raise FmbError(f"experiment {exp.name!r}: deploying to SageMaker needs instance_type.")
    resources: dict[str, str] = {}
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=loaded.config.aws.sagemaker_execution_role or "",
        PrimaryContainer={"Image": spec.image_uri, "Environment": {str(k): str(v) for k, v in spec.env.items()}},
    )
    resources["model"] = name
    record(resources)
    variant: dict[str, Any] = {
        "VariantName": spec.production_variant_name or "AllTraffic",
        "ModelName": name,
        "InstanceType": spec.instance_type,
        "InitialInstanceCount": exp.instance_count,
    }
    if spec.inference_spec.model_loading_timeout:
        variant["ContainerStartupHealthCheckTimeoutInSeconds"] = int(spec.inference_spec.model_loading_timeout)
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    resources["endpoint_config"] = name
    record(resources)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    resources["endpoint"] = name
    record(resources)


def _create_jumpstart(
    loaded: LoadedConfig, exp: ResolvedExperiment, name: str, record: Callable[[dict[str, str]], None]
) -> None:
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    try:
        from sagemaker.jumpstart.model import JumpStartModel
        from sagemaker.session import Session
    except ImportError:
        raise FmbError(
            f"experiment {exp.name!r}: jumpstart.py deploys through the SageMaker SDK, which is not installed.",
            hint="Install fmb's sagemaker extra: pip install -e '.[sagemaker]'.",
        ) from None
    from fmb.aws import client, session

    spec = exp.spec
    # Named by fmb, so that whatever the SDK gets to create is known even if it fails halfway.
    record({"model": name, "endpoint_config": name, "endpoint": name})
    try:
        boto_session = session(loaded, spec.region)
        sess = Session(
            boto_session=boto_session,
            sagemaker_client=client("sagemaker", loaded, spec.region, boto_session=boto_session),
            sagemaker_runtime_client=client("sagemaker-runtime", loaded, spec.region, boto_session=boto_session),
            # The SDK's documented opt-out: no usage data leaves this machine.
            sagemaker_config={
                "SchemaVersion": "1.0",
                "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
            },
        )
        # JumpStart reads its model specs from S3 through this client (so -A s3_endpoint_url applies).
        sess.s3_client = client("s3", loaded, spec.region, boto_session=boto_session)
        model = JumpStartModel(
            model_id=spec.model_id,
            model_version=spec.model_version or "*",
            instance_type=spec.instance_type,
            role=loaded.config.aws.sagemaker_execution_role,
            env={str(k): str(v) for k, v in spec.env.items()} or None,
            sagemaker_session=sess,
            region=boto_session.region_name,
            name=name,
        )
        model.deploy(
            initial_instance_count=exp.instance_count,
            instance_type=spec.instance_type,
            endpoint_name=name,
            accept_eula=bool(spec.accept_eula),
            wait=False,
        )
    except (ClientError, BotoCoreError, FmbError):
        raise  # handled by start()
    except Exception as exc:  # the SDK raises its own types (ValueError, KeyError, ...) for bad specs
        raise FmbError(
            f"experiment {exp.name!r}: the SageMaker SDK could not deploy JumpStart model {spec.model_id!r} "
            f"({type(exc).__name__}: {exc}).",
            hint="Check model_id, model_version and instance_type against JumpStart; fmb removed what it created.",
        ) from None


def wait_in_service(sm: Any, name: str, timeout_s: float, console: Console, poll_s: float = POLL_S) -> None:
    """Wait until the endpoint is InService; raise FmbError with its FailureReason if it fails."""
    started = time.monotonic()
    with console.status(f"SageMaker endpoint {escape(name)}: Creating") as status:
        while True:
            described = sm.describe_endpoint(EndpointName=name)
            state = described["EndpointStatus"]
            elapsed = time.monotonic() - started
            status.update(f"SageMaker endpoint {escape(name)}: {state} ({elapsed:.0f} s)")
            if state == "InService":
                return
            if state in ("Failed", "OutOfService", "Deleting"):
                raise FmbError(
                    f"SageMaker endpoint {name} is {state}: {described.get('FailureReason') or 'no reason given'}.",
                    hint="Check the instance type's quota, the image and its environment; fmb removed what it created.",
                )
            if elapsed > timeout_s:
                raise FmbError(
                    f"SageMaker endpoint {name} was still {state} after {timeout_s:g} s (deploy_timeout_s).",
                    hint="fmb removed what it created; raise deploy_timeout_s for models that load slowly.",
                )
            time.sleep(poll_s)


def start(
    exp: ResolvedExperiment,
    loaded: LoadedConfig,
    console: Console,
    record: Callable[[Deployment], None],
    forget: Callable[[str], None],
    poll_s: float = POLL_S,
) -> Deployment:
    """Stand the endpoint up, recording every resource as it is created.

    On failure what was created is removed and its record forgotten; if removing fails,
    the record stays for `fmb cleanup`.
    """
    started = time.monotonic()
    name = resource_name(exp.spec.ep_name or exp.name)
    deployment = Deployment(
        experiment=exp.name,
        kind="sagemaker",
        endpoint=name,
        created_at=datetime.now(UTC).isoformat(),
        deploy_seconds=0.0,
    )

    region = exp.spec.region or loaded.config.aws.region or ""

    def keep(resources: dict[str, str]) -> None:
        deployment.resources = dict(resources) | {"region": region}
        record(deployment)

    console.print(
        f"Deploying {exp.name} to SageMaker as {name} ({exp.instance_count} x {exp.spec.instance_type})...",
        highlight=False,
        markup=False,
    )
    try:
        sm = _control(loaded, exp)
        if exp.spec.deployment_script == JUMPSTART_SCRIPT:
            _create_jumpstart(loaded, exp, name, keep)
        else:
            _create_from_image(sm, loaded, exp, name, keep)
        wait_in_service(sm, name, exp.spec.deploy_timeout_s, console, poll_s)
    except (ClientError, BotoCoreError) as exc:
        remove(deployment, loaded)
        forget(exp.name)
        raise FmbError(
            f"experiment {exp.name!r}: SageMaker deployment failed ({_message(exc)}).",
            hint="fmb removed what it had created.",
        ) from None
    except BaseException:
        remove(deployment, loaded)
        forget(exp.name)
        raise
    deployment.deploy_seconds = time.monotonic() - started
    record(deployment)
    console.print(
        f"SageMaker endpoint {name} is InService ({deployment.deploy_seconds:.0f} s).", highlight=False, markup=False
    )
    return deployment


def remove(deployment: Deployment, loaded: LoadedConfig) -> list[str]:
    """Delete exactly the recorded endpoint, endpoint config and model(s); already-gone ones are fine."""
    from fmb.aws import client

    resources = deployment.resources
    try:
        sm = client("sagemaker", loaded, resources.get("region") or None)
    except BotoCoreError as exc:
        raise FmbError(
            f"cannot remove {deployment.experiment}'s SageMaker endpoint {deployment.endpoint}: {exc}.",
            hint="The record is kept; fix the AWS settings and run `fmb cleanup CONFIG` again.",
        ) from None
    problems = []
    calls: list[tuple[str, Callable[[], Any]]] = []
    if resources.get("endpoint"):
        calls.append(("endpoint", lambda: sm.delete_endpoint(EndpointName=resources["endpoint"])))
    if resources.get("endpoint_config"):
        calls.append(
            ("endpoint config", lambda: sm.delete_endpoint_config(EndpointConfigName=resources["endpoint_config"]))
        )
    models = [m for m in (resources.get("models") or resources.get("model") or "").split(",") if m]
    for model in models:
        calls.append(("model", functools.partial(sm.delete_model, ModelName=model)))
    for what, call in calls:
        try:
            call()
        except ClientError as exc:
            text = _message(exc)
            if "Could not find" not in text and "does not exist" not in text:
                problems.append(f"{what}: {text}")
        except BotoCoreError as exc:  # no connection, no credentials, ...
            problems.append(f"{what}: {exc}")
    if problems:
        raise FmbError(
            f"could not remove everything fmb deployed for {deployment.experiment}: {'; '.join(problems)}.",
            hint="The record is kept; run `fmb cleanup CONFIG` again, or delete them in the SageMaker console.",
        )
    return [c[0] for c in calls]


class SageMakerDeployer:
    """A SageMaker endpoint: an image (FMBench's container scripts) or a JumpStart model."""

    kind = "sagemaker"

    def handles(self, exp: ResolvedExperiment) -> bool:
        return (exp.spec.deployment_script or "").strip() in {JUMPSTART_SCRIPT, *CONTAINER_SCRIPTS}

    def plan(self, exp: ResolvedExperiment, loaded: LoadedConfig) -> DeployPlan:
        spec = exp.spec
        script = (spec.deployment_script or "").strip()
        problems = []
        if not spec.instance_type:
            problems.append("deploying to SageMaker needs instance_type")
        if script == JUMPSTART_SCRIPT:
            how = f"SageMaker endpoint for JumpStart model {spec.model_id} (SageMaker SDK)"
            if not spec.model_id:
                problems.append("jumpstart.py needs model_id")
        else:
            how = f"SageMaker endpoint from image {spec.image_uri} ({script})"
            if not spec.image_uri or spec.image_uri == "None":
                problems.append(f"{script} needs image_uri (the container image)")
        details = [
            f"instance type: {spec.instance_type or '-'} x {exp.instance_count}",
            f"region: {spec.region or loaded.config.aws.region or '(boto3 default)'}",
            f"execution role: {loaded.config.aws.sagemaker_execution_role or '-'}",
            "env: " + (", ".join(f"{k}={v}" for k, v in spec.env.items()) or "-"),
            f"creates: a model, an endpoint config and an endpoint named after {spec.ep_name or exp.name!r}",
        ]
        return DeployPlan(self.kind, how, details, problems)

    def deploy(self, exp: ResolvedExperiment, context: DeployContext) -> Deployment:
        return start(exp, context.loaded, context.console, record=context.registry.add, forget=context.registry.remove)

    def is_running(self, deployment: Deployment) -> bool:
        return True  # up as long as its record is: cleanup removes both

    def describe(self, deployment: Deployment) -> str:
        return f"sagemaker, endpoint {deployment.endpoint} and its config and model"

    def remove(self, deployment: Deployment, loaded: LoadedConfig) -> None:
        remove(deployment, loaded)
