"""Amazon SageMaker endpoints: stood up from FMBench's deployment_script values, taken down exactly.

``jumpstart.py`` deploys a JumpStart model (``model_id``, ``model_version``,
``accept_eula``) through the SageMaker SDK (fmb's ``sagemaker`` extra).
``deploy_w_hf_tgi.py`` and ``sagemaker_deploy.py`` deploy the experiment's container image
(``image_uri``) with its ``env`` through boto3: a model, an endpoint config and an endpoint.

``deploy_w_djl_serving.py`` and ``neuron_deploy.py`` do what FMBench's scripts do through the
AWS APIs: the experiment's ``serving.properties`` goes into a ``model.tar.gz`` in the write
bucket (``bucket``, else ``aws.bucket``), under ``<dir_paths.models_dir>/<model_id>/<endpoint
name>/``, and the model is created from the DJL (or Neuron DJL) image with that
ModelDataUrl, the variant timeouts FMBench sets, and ``HUGGING_FACE_HUB_TOKEN`` from
FMBench's hf_token.txt when there is one. FMBench's Neuron flow first downloads the model
from Hugging Face and compiles it for Neuron on the machine running FMBench; that is no AWS
API call and fmb does not do it (see :data:`NEURON_NOT_DONE`).

Every resource, the uploaded tarball included, is recorded the moment it is created, so a
crash while waiting still leaves a record that ``fmb cleanup`` can use; cleanup deletes the
endpoint, its config, the model and the tarball (the exact version uploaded), nothing else.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.markup import escape

from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.deployers import sagemaker_artifacts as artifacts
from fmb.deployers.base import DeployContext, DeployPlan
from fmb.deployers.registry import Deployment
from fmb.deployers.sagemaker_artifacts import DJL_SCRIPT, NEURON_SCRIPT
from fmb.errors import FmbError

CONTAINER_SCRIPTS = {"deploy_w_hf_tgi.py", DJL_SCRIPT, "sagemaker_deploy.py", NEURON_SCRIPT}
# The scripts whose container reads its settings from serving.properties in a model.tar.gz.
ARTIFACT_SCRIPTS = {DJL_SCRIPT, NEURON_SCRIPT}
JUMPSTART_SCRIPT = "jumpstart.py"
POLL_S = 15.0
NEURON_NOT_DONE = (
    "FMBench's neuron_deploy.py first downloads the model from Hugging Face, compiles it for Neuron "
    "(on an Inferentia/Trainium machine with the Neuron SDK, using ec2.batch_size, ec2.num_neuron_cores and "
    "ec2.neuron_version) and uploads the compiled model to S3; those are no AWS API calls and fmb does not do "
    "them. fmb makes only the SageMaker calls, so serving.properties' option.model_id must name a model already "
    "compiled for Neuron in S3, or a Hugging Face model that the Neuron DJL container compiles while it loads."
)
DJL_NOT_DONE = (
    "FMBench's deploy_w_djl_serving.py with download_from_hf_place_in_s3 downloads the model from Hugging Face "
    "and copies it to model_s3_path; that is no AWS API call and fmb does not do it, so the model must be there "
    "already."
)


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


@dataclass
class Problem:
    """Why an experiment cannot be deployed as configured: the key at fault and what to do."""

    message: str
    hint: str


@dataclass
class ContainerSpec:
    """What fmb sends to SageMaker for a container script, worked out from the config alone."""

    script: str
    image: str | None
    instance_type: str | None
    instance_count: int
    role: str
    env: dict[str, str]
    env_from: dict[str, str]  # variables fmb adds, and where their values come from
    variant: dict[str, int]  # production variant timeouts
    properties: str | None = None  # serving.properties text (DJL, Neuron)
    bucket: artifacts.Bucket | None = None
    key: str | None = None  # the tarball's S3 key
    model_location: tuple[str, str, str] | None = None  # (s3 URL, what names it, what fmb does not do)
    notes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def artifact_url(self) -> str | None:
        if self.bucket is None or not self.bucket.name or not self.key:
            return None
        return artifacts.s3_url(self.bucket.name, self.key)


def _blank(value: str | None) -> bool:
    return not value or not value.strip() or value.strip() == "None"


def _role(loaded: LoadedConfig, exp: ResolvedExperiment) -> tuple[str, str]:
    """The execution role and its key: the experiment's (FMBench's Neuron configs set it there), else aws's."""
    own = exp.spec.sagemaker_execution_role
    if isinstance(own, str) and not _blank(own):
        return own.strip(), f"{exp.key}.sagemaker_execution_role"
    return (loaded.config.aws.sagemaker_execution_role or "").strip(), "aws.sagemaker_execution_role"


def _instance_count(exp: ResolvedExperiment, problems: list[Problem]) -> int:
    """FMBench's Neuron configs leave instance_count empty and give it as ec2.instance_count (the loader reads both)."""
    return exp.instance_count


def _timeouts(exp: ResolvedExperiment, script: str, notes: list[str]) -> dict[str, int]:
    """The production variant timeouts, as FMBench's scripts set them, in SageMaker's 60-3600 s range."""
    spec = exp.spec
    variant: dict[str, int] = {}
    if script in ARTIFACT_SCRIPTS:
        given, source = spec.inference_spec.model_loading_timeout, "inference_spec.model_loading_timeout"
        if script == NEURON_SCRIPT and spec.ec2.model_loading_timeout:
            given, source = spec.ec2.model_loading_timeout, "ec2.model_loading_timeout"
        startup, changed = artifacts.clamp_timeout(given)
        variant["ModelDataDownloadTimeoutInSeconds"] = artifacts.FMBENCH_DJL_TIMEOUT_S
        variant["ContainerStartupHealthCheckTimeoutInSeconds"] = startup
    elif spec.inference_spec.model_loading_timeout:
        given, source = spec.inference_spec.model_loading_timeout, "inference_spec.model_loading_timeout"
        startup, changed = artifacts.clamp_timeout(given)
        variant["ContainerStartupHealthCheckTimeoutInSeconds"] = startup
    else:
        return variant
    if changed:
        notes.append(
            f"{source} is {given:g} s; SageMaker allows {artifacts.TIMEOUT_RANGE_S[0]}-"
            f"{artifacts.TIMEOUT_RANGE_S[1]} s for the container's startup health check, so fmb asks for {startup} s"
        )
    return variant


def container_spec(exp: ResolvedExperiment, loaded: LoadedConfig, name: str) -> ContainerSpec:
    """Everything deploying a container script sends to AWS, and what stops it; contacts nothing."""
    spec = exp.spec
    script = (spec.deployment_script or "").strip()
    problems: list[Problem] = []
    notes: list[str] = []
    if _blank(spec.instance_type):
        problems.append(
            Problem(
                f"{exp.key}.instance_type is not set; deploying to SageMaker needs one",
                "Set instance_type, e.g. ml.g5.2xlarge (ml.inf2.* or ml.trn1.* for neuron_deploy.py).",
            )
        )
    elif script == NEURON_SCRIPT and not (spec.instance_type or "").startswith(artifacts.NEURON_FAMILIES):
        problems.append(
            Problem(
                f"{exp.key}.instance_type is {spec.instance_type!r}; neuron_deploy.py deploys to AWS Inferentia "
                "or Trainium",
                "Use an ml.inf2.* or ml.trn1.* instance type, or deploy_w_djl_serving.py for GPU instances.",
            )
        )
    if _blank(spec.image_uri):
        problems.append(
            Problem(
                f"{exp.key}.image_uri is not set; {script} needs the container image",
                "Set image_uri to the DJL Serving (LMI) image of your region, e.g. "
                "763104351884.dkr.ecr.{region}.amazonaws.com/djl-inference:<tag>."
                if script in ARTIFACT_SCRIPTS
                else "Set image_uri to the container image (an ECR image URI).",
            )
        )
    elif script == NEURON_SCRIPT and "neuron" not in (spec.image_uri or "").lower():
        notes.append(f"image_uri {spec.image_uri} does not look like a Neuron image (no 'neuron' in its name)")
    role, role_key = _role(loaded, exp)
    if not role:
        problems.append(
            Problem(
                f"{role_key} is not set; SageMaker needs an execution role for the model",
                "Set aws.sagemaker_execution_role (or -A role_arn=ARN for FMBench's {role_arn}).",
            )
        )
    elif artifacts.is_stand_in(loaded, "role_arn", role):
        notes.append(f"{role_key} is fmb's stand-in for {{role_arn}} ({role}); give -A role_arn=ARN for a real account")
    env = {str(k): "" if v is None else str(v) for k, v in spec.env.items()}
    env_from: dict[str, str] = {}
    result = ContainerSpec(
        script=script,
        image=None if _blank(spec.image_uri) else spec.image_uri,
        instance_type=None if _blank(spec.instance_type) else spec.instance_type,
        instance_count=_instance_count(exp, problems),
        role=role,
        env=env,
        env_from=env_from,
        variant=_timeouts(exp, script, notes),
        notes=notes,
        problems=problems,
    )
    if script not in ARTIFACT_SCRIPTS:
        return result

    # FMBench's DJL script gives the container the Hugging Face token of hf_token.txt.
    token = loaded.hf_token()
    if token and not ({artifacts.HF_TOKEN_VARIABLE, "HF_TOKEN"} & set(env)):
        env[artifacts.HF_TOKEN_VARIABLE] = token[0]
        env_from[artifacts.HF_TOKEN_VARIABLE] = token[1]
    properties_key = artifacts.serving_properties_key(exp)
    if spec.serving_properties is None or not spec.serving_properties.strip():
        problems.append(
            Problem(
                f"{properties_key} is not set; {script} gives the DJL container its settings as serving.properties",
                "Add serving.properties: | with engine=..., option.model_id=... and the other option.* lines.",
            )
        )
    else:
        result.properties = spec.serving_properties
    bucket = artifacts.write_bucket(loaded, exp)
    result.bucket = bucket
    if not bucket.name:
        problems.append(
            Problem(
                f"no write bucket: neither {exp.key}.bucket nor aws.bucket is set, and {script} uploads "
                "serving.properties as model.tar.gz to it",
                "Set aws.bucket to an S3 bucket you can write to (FMBench's {write_bucket}: -A write_bucket=BUCKET).",
            )
        )
    elif bucket.stand_in:
        problems.append(
            Problem(
                f"{bucket.key} is {bucket.name!r}, fmb's stand-in for {{write_bucket}}, not a bucket you named",
                "Give the write bucket: -A write_bucket=BUCKET (or set FMB_WRITE_BUCKET, or write it into the config).",
            )
        )
    else:
        result.key = artifacts.artifact_key(loaded, exp, name)
    if result.properties:
        model_id = artifacts.property_value(result.properties, "option.model_id") or artifacts.property_value(
            result.properties, "option.s3url"
        )
        if model_id and model_id.startswith("s3://"):
            not_done = NEURON_NOT_DONE if script == NEURON_SCRIPT else ""
            result.model_location = (model_id, f"{properties_key} option.model_id", not_done)
        elif not model_id:
            notes.append(f"{properties_key} names no model (no option.model_id line)")
    if script == DJL_SCRIPT and spec.download_from_hf_place_in_s3 is True:
        target = spec.model_s3_path
        notes.append(DJL_NOT_DONE)
        if isinstance(target, str) and target.startswith("s3://"):
            result.model_location = (target, f"{exp.key}.model_s3_path", DJL_NOT_DONE)
    if script == NEURON_SCRIPT:
        notes.append(NEURON_NOT_DONE)
    return result


def _raise_problems(exp: ResolvedExperiment, problems: list[Problem]) -> None:
    if problems:
        raise FmbError(
            f"experiment {exp.name!r} cannot be deployed: " + "; ".join(p.message for p in problems) + ".",
            hint=" ".join(dict.fromkeys(p.hint for p in problems)),
        )


def _create_from_image(
    sm: Any,
    loaded: LoadedConfig,
    exp: ResolvedExperiment,
    name: str,
    record: Callable[[dict[str, str]], None],
    console: Console,
) -> None:
    plan = container_spec(exp, loaded, name)
    _raise_problems(exp, plan.problems)
    assert plan.image and plan.instance_type
    resources: dict[str, str] = {}
    container: dict[str, Any] = {"Image": plan.image, "Environment": plan.env}
    if plan.script in ARTIFACT_SCRIPTS:
        from fmb.aws import client

        assert plan.bucket and plan.bucket.name and plan.key and plan.properties is not None
        s3 = client("s3", loaded, exp.spec.region)
        if plan.model_location:
            note = artifacts.check_model_location(s3, *plan.model_location)
            if note:
                console.print(f"{exp.name}: {note}", highlight=False, markup=False, soft_wrap=True)
        version = artifacts.upload(s3, plan.bucket, plan.key, artifacts.tarball(plan.properties))
        url = artifacts.s3_url(plan.bucket.name, plan.key)
        resources["artifact"] = url
        if version:
            resources["artifact_version"] = version
        record(resources)
        # soft_wrap: the URL stays on one line, whole, for copying.
        console.print(
            f"{exp.name}: serving.properties uploaded as {url}", highlight=False, markup=False, soft_wrap=True
        )
        container["ModelDataUrl"] = url
    sm.create_model(ModelName=name, ExecutionRoleArn=plan.role, PrimaryContainer=container)
    resources["model"] = name
    record(resources)
    variant: dict[str, Any] = {
        "VariantName": exp.spec.production_variant_name or "AllTraffic",
        "ModelName": name,
        "InstanceType": plan.instance_type,
        "InitialInstanceCount": plan.instance_count,
        **plan.variant,
    }
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
        f"Deploying {exp.name} to SageMaker as {name} ({_instance_count(exp, [])} x {exp.spec.instance_type})...",
        highlight=False,
        markup=False,
    )
    try:
        sm = _control(loaded, exp)
        if exp.spec.deployment_script == JUMPSTART_SCRIPT:
            _create_jumpstart(loaded, exp, name, keep)
        else:
            _create_from_image(sm, loaded, exp, name, keep, console)
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
    """Delete exactly the recorded endpoint, endpoint config, model(s) and uploaded model.tar.gz (its
    recorded version); already-gone ones are fine."""
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
    if resources.get("artifact"):

        def delete_artifact() -> None:
            s3 = client("s3", loaded, resources.get("region") or None)
            artifacts.delete(s3, resources["artifact"], resources.get("artifact_version"))

        calls.append((f"model artifact {resources['artifact']}", delete_artifact))
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
            hint="The record is kept; run `fmb cleanup CONFIG` again, or delete them in the SageMaker and S3 consoles.",
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
        region = spec.region or loaded.config.aws.region or "(boto3 default)"
        name = resource_name(spec.ep_name or exp.name)
        if script == JUMPSTART_SCRIPT:
            problems = []
            if _blank(spec.instance_type):
                problems.append(f"{exp.key}.instance_type is not set; deploying to SageMaker needs one")
            if _blank(spec.model_id):
                problems.append(f"{exp.key}.model_id is not set; jumpstart.py needs the JumpStart model id")
            role, role_key = _role(loaded, exp)
            if not role:
                problems.append(f"{role_key} is not set; SageMaker needs an execution role for the model")
            details = [
                f"instance type: {spec.instance_type or '-'} x {exp.instance_count}",
                f"region: {region}",
                f"execution role: {role or '-'}",
                "env: "
                + (", ".join(f"{k}={artifacts.masked_value(loaded, k, v)}" for k, v in spec.env.items()) or "-"),
                f"creates: a model, an endpoint config and an endpoint named {name} (the time of deploying)",
            ]
            how = f"SageMaker endpoint for JumpStart model {spec.model_id} (SageMaker SDK)"
            return DeployPlan(self.kind, how, details, problems)

        c = container_spec(exp, loaded, name)
        if script == NEURON_SCRIPT:
            how = f"SageMaker endpoint on AWS Inferentia/Trainium from Neuron DJL image {c.image} ({script})"
        elif script == DJL_SCRIPT:
            how = f"SageMaker endpoint from DJL Serving image {c.image} with serving.properties ({script})"
        else:
            how = f"SageMaker endpoint from image {c.image} ({script})"
        env = [
            f"{k}={artifacts.masked_value(loaded, k, v)}" + (f" (from {c.env_from[k]})" if k in c.env_from else "")
            for k, v in c.env.items()
        ]
        details = [
            f"image: {c.image or '-'}",
            f"instance type: {c.instance_type or '-'} x {c.instance_count}",
            f"region: {region}",
            f"execution role: {c.role or '-'}",
            "env: " + (", ".join(env) or "-"),
        ]
        details += [f"{setting}: {seconds} s" for setting, seconds in c.variant.items()]
        creates = f"a model, an endpoint config and an endpoint named {name} (the time of deploying)"
        if script in ARTIFACT_SCRIPTS:
            where = c.artifact_url or (f"s3://{c.bucket.name}/..." if c.bucket and c.bucket.name else "-")
            details.append(f"model artifact: {where} (model.tar.gz holding only serving.properties)")
            if c.properties:
                lines = artifacts.properties(c.properties)
                details.append(f"serving.properties ({len(lines)} settings):")
                details += [f"  {key}={artifacts.masked_value(loaded, key, value)}" for key, value in lines]
            if c.model_location:
                details.append(f"model location: {c.model_location[0]} (checked to hold files before deploying)")
            creates = f"the S3 object above, {creates}; fmb cleanup deletes all four"
        details.append(f"creates: {creates}")
        details += [f"note: {note}" for note in c.notes]
        return DeployPlan(self.kind, how, details, [p.message for p in c.problems])

    def deploy(self, exp: ResolvedExperiment, context: DeployContext) -> Deployment:
        return start(exp, context.loaded, context.console, record=context.registry.add, forget=context.registry.remove)

    def is_running(self, deployment: Deployment) -> bool:
        return True  # up as long as its record is: cleanup removes both

    def describe(self, deployment: Deployment) -> str:
        artifact = deployment.resources.get("artifact")
        if artifact:
            return f"sagemaker, endpoint {deployment.endpoint} and its config, model and {artifact}"
        return f"sagemaker, endpoint {deployment.endpoint} and its config and model"

    def remove(self, deployment: Deployment, loaded: LoadedConfig) -> None:
        remove(deployment, loaded)
