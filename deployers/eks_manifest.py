"""FMBench's EKS manifests: found, read and filled in as its eks_deploy.py does with envsubst.

The experiment's ``eks:`` section names the manifest (``manifest_dir``/``manifest_file``;
FMBench's Ray Serve blueprints hold a Namespace, a RayService and an Ingress). Its
``$VARIABLES`` are filled as FMBench's envsubst does: ``$HUGGING_FACE_HUB_TOKEN`` from
hf_token.txt (or the environment), ``$AWS_REGION`` from the config, others from the
environment. Filled values other than the region are secrets: never written or printed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.config.schema import EksSettings
from fmb.errors import FmbError

SCRIPT = "eks_deploy.py"
HF_TOKEN_FILE = "hf_token.txt"
TOKEN_VARIABLE = "HUGGING_FACE_HUB_TOKEN"
# envsubst's syntax: $NAME or ${NAME} ("/$1" in an nginx annotation is not a variable).
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
# Kinds that live outside namespaces (for the plan, which asks no server).
_CLUSTER_KINDS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "PersistentVolume",
    "PriorityClass",
    "StorageClass",
}


@dataclass(frozen=True)
class ObjectRef:
    """One Kubernetes object, as recorded: enough to find and delete it again."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    def shown(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass
class Manifest:
    path: Path
    objects: list[dict[str, Any]]  # placeholders filled: holds secrets, never written or printed
    refs: list[ObjectRef]
    filled: list[str] = field(default_factory=list)  # "$NAME: where its value came from" (never the value)
    secrets: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # variables without a value (left as they are)


def eks_settings(exp: ResolvedExperiment) -> EksSettings:
    if exp.spec.eks is None:
        raise FmbError(
            f"experiment {exp.name!r}: deployment_script {SCRIPT} needs an `eks:` section "
            "(eks_cluster_name, eks_model_namespace, manifest_dir, manifest_file)."
        )
    return exp.spec.eks


def manifest_candidates(exp: ResolvedExperiment, loaded: LoadedConfig) -> list[Path]:
    """Where the manifest may be: next to the config and up its folders (FMBench's manifest_dir is
    relative to its package, above configs/<model>/<size>/), then in the read folder."""
    settings = eks_settings(exp)
    if not settings.manifest_file:
        return []
    name = Path(settings.manifest_dir or "") / Path(settings.manifest_file).expanduser()
    if name.is_absolute():
        return [name]
    folder = loaded.path.parent.resolve()
    bases = [*[folder, *folder.parents][:4], loaded.read_root]
    return list(dict.fromkeys(base / name for base in bases))


def hf_token(loaded: LoadedConfig) -> tuple[str | None, str]:
    """FMBench's hf_token.txt in the read folder's scripts, else $HF_TOKEN or $HUGGING_FACE_HUB_TOKEN."""
    found = loaded.hf_token()
    return found if found else (None, "")


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: values.get(m.group(1) or m.group(2), m.group(0)), value)
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    if isinstance(value, dict):
        return {_fill(k, values): _fill(v, values) for k, v in value.items()}
    return value


def _variables(value: Any) -> set[str]:
    if isinstance(value, str):
        return {m.group(1) or m.group(2) for m in _VARIABLE.finditer(value)}
    if isinstance(value, list):
        return set().union(*(_variables(item) for item in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(_variables(k) | _variables(v) for k, v in value.items())) if value else set()
    return set()


def read_manifest(exp: ResolvedExperiment, loaded: LoadedConfig, *, complete: bool = True) -> Manifest:
    """The manifest's objects with FMBench's variables filled; FmbError names what is wrong.

    With ``complete=False`` (for a plan) variables without a value are left as they are and
    listed in ``missing`` instead of raising.
    """
    settings = eks_settings(exp)
    where = f"experiment {exp.name!r}: eks.manifest_file"
    if not settings.manifest_file:
        raise FmbError(f"{where} is not set; it names the Kubernetes manifest to apply.")
    candidates = manifest_candidates(exp, loaded)
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FmbError(
            f"{where} {settings.manifest_file!r} (manifest_dir {settings.manifest_dir!r}) was not found; "
            f"looked at {', '.join(str(p) for p in candidates)}.",
            hint="Put the manifest there, or give eks.manifest_file as an absolute path.",
        )
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise FmbError(f"{where}: {path} cannot be read as YAML ({exc}).") from None
    objects: list[dict[str, Any]] = []
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "List":
            objects.extend(document.get("items") or [])
        else:
            objects.append(document)
    if not objects:
        raise FmbError(f"{where}: {path} holds no Kubernetes objects.")
    default_namespace = settings.eks_model_namespace or "default"
    refs = []
    for number, obj in enumerate(objects, 1):
        metadata = obj.get("metadata") if isinstance(obj, dict) else None
        if (
            not isinstance(obj, dict)
            or not obj.get("apiVersion")
            or not obj.get("kind")
            or not isinstance(metadata, dict)
            or not metadata.get("name")
        ):
            raise FmbError(f"{where}: object {number} of {path} needs apiVersion, kind and metadata.name.")
        kind = str(obj["kind"])
        namespace = None if kind in _CLUSTER_KINDS else str(metadata.get("namespace") or default_namespace)
        refs.append(ObjectRef(str(obj["apiVersion"]), kind, str(metadata["name"]), namespace))

    values, filled, secrets, missing = _values(exp, loaded, _variables(objects))
    manifest = Manifest(path, [_fill(obj, values) for obj in objects], refs, filled, secrets, missing)
    if missing and complete:
        raise FmbError(unfilled_problem(exp, loaded, manifest))
    return manifest


def _values(
    exp: ResolvedExperiment, loaded: LoadedConfig, names: set[str]
) -> tuple[dict[str, str], list[str], list[str], list[str]]:
    """(values, what was filled from where, the secret values, the names without a value)."""
    values: dict[str, str] = {}
    filled: list[str] = []
    secrets: list[str] = []
    missing: list[str] = []
    region = exp.spec.region or loaded.config.aws.region
    for name in sorted(names):
        if name == TOKEN_VARIABLE:
            token, source = hf_token(loaded)
            if token:
                values[name] = token
                secrets.append(token)
                filled.append(f"${name}: *** (from {source})")
        elif name == "AWS_REGION" and region:
            values[name] = region
            filled.append(f"${name}: {region} (the config's region)")
        elif os.environ.get(name):
            values[name] = os.environ[name]
            secrets.append(values[name])
            filled.append(f"${name}: *** (from the environment)")
        if name not in values:
            missing.append(name)
    return values, filled, secrets, missing


def unfilled_problem(exp: ResolvedExperiment, loaded: LoadedConfig, manifest: Manifest) -> str:
    """Why the manifest cannot be applied as it is: variables without a value, and where to give them."""
    where = f"{manifest.path} uses {', '.join('$' + n for n in manifest.missing)}, which fmb has no value for"
    if TOKEN_VARIABLE in manifest.missing:
        scripts = loaded.read_root / (loaded.config.s3_read_data.scripts_prefix or "scripts") / HF_TOKEN_FILE
        return f"{where}: put the Hugging Face token in {scripts} (as FMBench does) or in ${TOKEN_VARIABLE}"
    return f"{where}: set them in the environment (FMBench fills them with envsubst)"


def images(obj: Any) -> list[str]:
    """Every container image an object names, wherever its pod templates are."""
    if isinstance(obj, dict):
        found = [str(obj["image"])] if isinstance(obj.get("image"), str) and "name" in obj else []
        return found + [image for value in obj.values() for image in images(value)]
    if isinstance(obj, list):
        return [image for item in obj for image in images(item)]
    return []
