"""The model artifact of a DJL Serving (or Neuron DJL) SageMaker endpoint: serving.properties in model.tar.gz.

FMBench's ``deploy_w_djl_serving.py`` and ``neuron_deploy.py`` give the container its
settings as a ``serving.properties`` file inside a ``model.tar.gz`` in the write bucket;
the model itself comes from Hugging Face or S3, as ``option.model_id`` says, when the
container starts. This module builds that tarball in memory, names its S3 key, uploads it
without ever overwriting an object, and deletes exactly the version it uploaded.

Nothing here calls AWS except :func:`upload`, :func:`delete` and :func:`check_model_location`,
each of which takes the S3 client it uses.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.config.placeholders import local_defaults
from fmb.errors import FmbError

DJL_SCRIPT = "deploy_w_djl_serving.py"
NEURON_SCRIPT = "neuron_deploy.py"
ARCHIVE = "model.tar.gz"
MEMBER = "serving.properties"
DEFAULT_MODELS_DIR = "models"
# The variable FMBench sets from hf_token.txt for DJL models that download from the Hugging Face hub.
HF_TOKEN_VARIABLE = "HUGGING_FACE_HUB_TOKEN"
# SageMaker accepts 60 to 3600 s for both production variant timeouts; FMBench's DJL script sets both to 3600.
TIMEOUT_RANGE_S = (60, 3600)
FMBENCH_DJL_TIMEOUT_S = 3600
# Instance families the Neuron DJL containers (transformers-neuronx, NxD) run on.
NEURON_FAMILIES = ("ml.inf2.", "ml.trn1.", "ml.trn1n.", "ml.trn2.")
PLAN_MASK = "****"


def serving_properties_key(exp: ResolvedExperiment) -> str:
    return f"{exp.key}.serving.properties"


def tarball(properties: str, mtime: float | None = None) -> bytes:
    """model.tar.gz holding exactly one file, serving.properties, with the given text."""
    data = properties.encode("utf-8")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(MEMBER)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time() if mtime is None else mtime)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def properties(text: str) -> list[tuple[str, str]]:
    """The key=value lines of a serving.properties text (comments and blank lines left out)."""
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "!")):
            continue
        key, _, value = _split(stripped)
        out.append((key, value))
    return out


def _split(line: str) -> tuple[str, str, str]:
    match = re.match(r"([^=:\s]+)\s*[=:]?\s*(.*)", line)
    if not match:
        return line, "", ""
    return match.group(1), "=", match.group(2)


def property_value(text: str, name: str) -> str | None:
    for key, value in properties(text):
        if key == name:
            return value
    return None


def _key_segments(text: str) -> list[str]:
    cleaned = re.sub(r"[^A-Za-z0-9._/-]+", "-", text)
    return [s for s in cleaned.split("/") if s not in ("", ".", "..")]


def artifact_key(loaded: LoadedConfig, exp: ResolvedExperiment, name: str) -> str:
    """``<dir_paths.models_dir>/<model_id>/<endpoint name>/model.tar.gz``.

    FMBench writes ``<model_id>/model.tar.gz``, one key per model, which a second run of the
    same model overwrites; fmb adds the models folder of the write bucket and the endpoint's
    timestamped name, so that every deployment has its own object and cleanup deletes only it.
    """
    models = _key_segments(loaded.config.dir_paths.models_dir or DEFAULT_MODELS_DIR) or [DEFAULT_MODELS_DIR]
    model = _key_segments(exp.spec.model_id or exp.spec.model_name or "") or ["model"]
    return "/".join([*models, *model, *_key_segments(name), ARCHIVE])


@dataclass(frozen=True)
class Bucket:
    name: str | None
    key: str  # the config key it came from, for messages
    stand_in: bool  # fmb's local stand-in for {write_bucket}, not a bucket the user named


def write_bucket(loaded: LoadedConfig, exp: ResolvedExperiment) -> Bucket:
    """The experiment's `bucket`, else the config's `aws.bucket` (FMBench's write bucket)."""
    if exp.spec.bucket and exp.spec.bucket != "None":
        name, key = exp.spec.bucket, f"{exp.key}.bucket"
    elif loaded.config.aws.bucket and loaded.config.aws.bucket != "None":
        name, key = loaded.config.aws.bucket, "aws.bucket"
    else:
        return Bucket(None, "aws.bucket", False)
    return Bucket(name, key, is_stand_in(loaded, "write_bucket", name))


def is_stand_in(loaded: LoadedConfig, placeholder: str, value: str) -> bool:
    """Whether ``value`` is the local default fmb fills `{placeholder}` with when nothing gives it.

    FMBench asks AWS for the write bucket and the role; fmb never does while reading a config,
    so without `-A write_bucket=...` (or FMB_WRITE_BUCKET) `{write_bucket}` holds a stand-in name.
    """
    if placeholder in loaded.assignments:
        return False
    default = local_defaults(loaded.path, Path("."))[placeholder]
    env = {"write_bucket": "FMB_WRITE_BUCKET", "role_arn": "FMB_ROLE_ARN"}.get(placeholder)
    return value == default and not (env and os.environ.get(env))


def s3_url(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def parse_s3_url(url: str) -> tuple[str, str]:
    rest = url.removeprefix("s3://")
    bucket, _, key = rest.partition("/")
    return bucket, key


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def upload(s3: Any, bucket: Bucket, key: str, body: bytes) -> str | None:
    """Put the tarball at ``key``, never over an existing object; the new object's VersionId, if versioned."""
    assert bucket.name
    try:
        response = s3.put_object(
            Bucket=bucket.name, Key=key, Body=body, ContentType="application/gzip", IfNoneMatch="*"
        )
    except ClientError as exc:
        code = _code(exc)
        if code == "NoSuchBucket":
            raise FmbError(
                f"the write bucket {bucket.name!r} ({bucket.key}) does not exist, so fmb cannot upload "
                f"serving.properties as {s3_url(bucket.name, key)}.",
                hint=f"Create the bucket, or set {bucket.key} (or -A write_bucket=BUCKET) to one that exists.",
            ) from None
        if code in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise FmbError(
                f"{s3_url(bucket.name, key)} already exists; fmb never overwrites an object it did not create.",
                hint="Deploy again in a second (the key carries the time), or set dir_paths.models_dir to another "
                "folder.",
            ) from None
        raise
    version = response.get("VersionId")
    return str(version) if version and version != "null" else None


def delete(s3: Any, url: str, version: str | None) -> None:
    """Delete exactly the uploaded object (its version, in a versioned bucket); one already gone is fine."""
    bucket, key = parse_s3_url(url)
    kwargs = {"Bucket": bucket, "Key": key} | ({"VersionId": version} if version else {})
    try:
        s3.delete_object(**kwargs)
    except ClientError as exc:
        if _code(exc) not in ("NoSuchBucket", "NoSuchKey", "NoSuchVersion"):
            raise


def check_model_location(s3: Any, url: str, what: str, not_done: str) -> str | None:
    """Raise FmbError if the S3 folder the container will load the model from holds nothing.

    Returns a note when it could not be checked (no permission to list it: the endpoint's role
    may still read it).
    """
    bucket, prefix = parse_s3_url(url)
    try:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except ClientError as exc:
        if _code(exc) == "NoSuchBucket":
            listed = {"KeyCount": 0}
        else:
            return f"could not check that {url} holds the model ({_code(exc) or exc}); deploying anyway"
    if not listed.get("KeyCount") and not listed.get("Contents"):
        raise FmbError(
            f"{what} is {url}, which holds no objects, so the endpoint would fail while loading the model. " + not_done,
            hint="Put the model files there first, or point it at a location that holds them.",
        )
    return None


def clamp_timeout(value: float | None, default: int = FMBENCH_DJL_TIMEOUT_S) -> tuple[int, bool]:
    """A production variant timeout in SageMaker's range, and whether it had to be changed to fit."""
    seconds = int(value) if value else default
    low, high = TIMEOUT_RANGE_S
    fitted = min(max(seconds, low), high)
    return fitted, fitted != seconds


def masked_value(loaded: LoadedConfig, key: str, value: Any) -> str:
    """A value for display: ``****`` if its key looks secret or it is (or holds) a known secret."""
    from fmb.redact import is_secret_key

    text = "" if value is None else str(value)
    if text and (is_secret_key(str(key)) or loaded.redactor()(text) != text):
        return PLAN_MASK
    return text
