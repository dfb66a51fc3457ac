"""Amazon EKS: FMBench's eks_deploy.py, through the Kubernetes API instead of kubectl.

fmb creates every object of the experiment's manifest (see :mod:`fmb.deployers.eks_manifest`)
in the cluster (see :mod:`fmb.deployers.eks_cluster`), records each one the moment it
exists, and waits until the model answers at the Ingress address followed by
``inference_spec.inference_url_format`` (or at the configured endpoint_url), printing
progress. If anything fails, or Ctrl-C comes, what was created is deleted again. Removing
deletes exactly the recorded objects: a namespace that existed before is used, never
recorded and never deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import httpx
from rich.console import Console

from fmb.collector.targets.containers import ray_serve_url
from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.deployers.base import DeployContext, DeployPlan
from fmb.deployers.eks_cluster import (
    REQUEST_TIMEOUT_S,
    Cluster,
    api_errors,
    api_message,
    connect,
    delete_objects,
    find_cluster,
    get_object,
    resource_of,
)
from fmb.deployers.eks_manifest import (
    SCRIPT,
    Manifest,
    ObjectRef,
    eks_settings,
    images,
    read_manifest,
    unfilled_problem,
)
from fmb.deployers.registry import Deployment
from fmb.errors import FmbError

POLL_S = 5.0


# --- standing it up ------------------------------------------------------------------------


def _apply(
    client: Any,
    manifest: Manifest,
    console: Console,
    record: Callable[[ObjectRef], None],
    mask: Callable[[str], str],
) -> list[ObjectRef]:
    """Create every object in the manifest's order; record each as soon as it exists."""
    from kubernetes.dynamic.exceptions import ConflictError

    created = []
    for obj, ref in zip(manifest.objects, manifest.refs, strict=True):
        try:
            resource = resource_of(client, ref)
            namespace = ref.namespace if resource.namespaced else None
            ref = ObjectRef(ref.api_version, ref.kind, ref.name, namespace)
            body = obj if namespace is None else obj | {"metadata": obj["metadata"] | {"namespace": namespace}}
            resource.create(body=body, namespace=namespace, _request_timeout=REQUEST_TIMEOUT_S)
        except ConflictError:
            if ref.kind == "Namespace" and ref.api_version == "v1":
                console.print(f"  {ref.shown()} exists already: used, and left in place afterwards", markup=False)
                continue
            raise FmbError(
                f"{ref.shown()} exists already in the cluster; fmb does not change what it did not create.",
                hint="Delete it (kubectl delete ...) or rename it in the manifest, then deploy again.",
            ) from None
        except api_errors() as exc:
            raise FmbError(f"cannot create {ref.shown()}: {mask(api_message(exc))}.") from None
        record(ref)
        created.append(ref)
        console.print(f"  created {ref.shown()}", markup=False, highlight=False)
    return created


def _address(client: Any, refs: list[ObjectRef]) -> str | None:
    """http://HOST[:PORT] of the first Ingress (or LoadBalancer Service) that has an address."""
    for ref in [r for r in refs if r.kind == "Ingress"] + [r for r in refs if r.kind == "Service"]:
        obj = get_object(client, ref)
        if obj is None:
            continue
        data = obj.to_dict()
        entries = (((data.get("status") or {}).get("loadBalancer") or {}).get("ingress")) or []
        if not entries:
            continue
        entry = entries[0]
        host = entry.get("hostname") or entry.get("ip")
        if not host:
            continue
        ports = entry.get("ports") or []
        port = ports[0].get("port") if ports else None
        if ref.kind == "Service":
            port = port or ((data.get("spec") or {}).get("ports") or [{}])[0].get("port")
        return f"http://{host}" + (f":{port}" if port and int(port) != 80 else "")
    return None


def _serve_state(client: Any, refs: list[ObjectRef]) -> str:
    """A RayService's own account of itself (KubeRay's serviceStatus or Ready condition)."""
    for ref in refs:
        if ref.kind != "RayService":
            continue
        obj = get_object(client, ref)
        status = (obj.to_dict().get("status") if obj is not None else None) or {}
        ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
        state = status.get("serviceStatus") or (ready[0].get("reason") if ready else None) or "no status yet"
        return f"{ref.shown()}: {state}"
    return ""


def endpoint_of(exp: ResolvedExperiment) -> str | None:
    """The URL given in the config (endpoint_url, or ep_name when it is a URL), if any."""
    given = exp.spec.endpoint_url or exp.spec.ep_name
    return given if given and given.startswith(("http://", "https://")) else None


def _probe(exp: ResolvedExperiment, url: str) -> tuple[bool, str]:
    """Whether the model answers: a Ray Serve route a short prompt with 2xx, anything else below 500."""
    probe = ray_serve_url(url, "Hello") if exp.backend == "ray-serve" else url
    try:
        status = httpx.get(probe, timeout=10.0).status_code
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return False, f"no answer ({type(exc).__name__})"
    ok = 200 <= status < 300 if exp.backend == "ray-serve" else status < 500
    return ok, f"HTTP {status}"


def deploy_timeout(exp: ResolvedExperiment) -> tuple[float, str]:
    """fmb's deploy_timeout_s when set, else FMBench's model_loading_timeout, else the default."""
    spec = exp.spec
    if "deploy_timeout_s" not in spec.model_fields_set and spec.inference_spec.model_loading_timeout:
        return float(spec.inference_spec.model_loading_timeout), "inference_spec.model_loading_timeout"
    return float(spec.deploy_timeout_s), "deploy_timeout_s"


def wait_until_ready(
    client: Any, exp: ResolvedExperiment, refs: list[ObjectRef], console: Console, poll_s: float = POLL_S
) -> str:
    """The endpoint URL once the model answers there; FmbError after the timeout."""
    timeout, key = deploy_timeout(exp)
    route = exp.spec.inference_spec.inference_url_format or ""
    started = time.monotonic()
    last = ""
    while True:
        url = endpoint_of(exp)
        if url is None:
            address = _address(client, refs)
            url = address + route if address else None
        ok, answer = _probe(exp, url) if url else (False, "")
        state = "; ".join(
            part
            for part in (_serve_state(client, refs), f"{url}: {answer}" if url else "no ingress address yet")
            if part
        )
        if state != last:
            console.print(f"  {time.monotonic() - started:.0f} s: {state}", markup=False, highlight=False)
            last = state
        if ok and url:
            return url
        if time.monotonic() - started > timeout:
            raise FmbError(
                f"experiment {exp.name!r}: the model did not answer within {timeout:g} s ({key}); last: {state}.",
                hint="Watch the pods (kubectl get pods -n NAMESPACE -w); raise the timeout for models that load "
                "slowly.",
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
    """Create the manifest's objects, wait until the model answers; on failure remove what was created."""
    settings = eks_settings(exp)
    manifest = read_manifest(exp, loaded)
    cluster = find_cluster(exp)

    def mask(text: str) -> str:
        for secret in manifest.secrets:
            text = text.replace(secret, "***")
        return text

    started = time.monotonic()
    deployment = Deployment(
        experiment=exp.name,
        kind="eks",
        endpoint=endpoint_of(exp) or "",
        created_at=datetime.now(UTC).isoformat(),
        deploy_seconds=0.0,
        resources={
            "cluster": settings.eks_cluster_name,
            "kubeconfig": cluster.kubeconfig,
            "context": cluster.context,
            "in_cluster": cluster.in_cluster,
            "manifest": str(manifest.path),
            "objects": [],
        },
    )
    created: list[ObjectRef] = []

    def keep(ref: ObjectRef) -> None:
        created.append(ref)
        deployment.resources["objects"] = [asdict(r) for r in created]
        record(deployment)

    console.print(
        f"Deploying {exp.name} to EKS cluster {settings.eks_cluster_name or '(current context)'}: "
        f"{len(manifest.refs)} objects from {manifest.path} ({exp.instance_count} x {exp.spec.instance_type})...",
        markup=False,
        highlight=False,
    )
    try:
        with connect(cluster) as client:
            _apply(client, manifest, console, keep, mask)
            deployment.endpoint = wait_until_ready(client, exp, created, console, poll_s)
    except BaseException as exc:
        problems = delete_objects(cluster, created)
        if not problems:
            forget(exp.name)
        undone = (
            "fmb removed what it had created."
            if not problems
            else f"fmb could not remove everything it created ({'; '.join(problems)}); the record is kept for "
            "`fmb cleanup CONFIG`."
        )
        if isinstance(exc, FmbError):
            raise FmbError(exc.message, hint=" ".join(filter(None, [exc.hint, undone]))) from None
        if isinstance(exc, KeyboardInterrupt):
            raise FmbError(f"experiment {exp.name!r}: deploying to EKS was interrupted.", hint=undone) from None
        if isinstance(exc, api_errors()):
            raise FmbError(
                f"experiment {exp.name!r}: deploying to EKS failed ({mask(api_message(exc))}).", hint=undone
            ) from None
        raise
    deployment.deploy_seconds = time.monotonic() - started
    record(deployment)
    console.print(
        f"{exp.name} answers at {deployment.endpoint} ({deployment.deploy_seconds:.0f} s).",
        markup=False,
        highlight=False,
    )
    return deployment


def _recorded(deployment: Deployment) -> tuple[Cluster, list[ObjectRef]]:
    resources = deployment.resources
    cluster = Cluster(resources.get("kubeconfig"), resources.get("context"), bool(resources.get("in_cluster")))
    return cluster, [ObjectRef(**r) for r in resources.get("objects") or []]


class EksDeployer:
    """A Kubernetes manifest applied to an EKS cluster (FMBench's eks_deploy.py)."""

    kind = "eks"

    def handles(self, exp: ResolvedExperiment) -> bool:
        return (exp.spec.deployment_script or "").strip() == SCRIPT

    def plan(self, exp: ResolvedExperiment, loaded: LoadedConfig) -> DeployPlan:
        problems: list[str] = []
        details: list[str] = []
        settings = exp.spec.eks
        if settings is None:
            problems.append(f"{SCRIPT} needs an eks: section (eks_cluster_name, manifest_dir, manifest_file, ...)")
            return DeployPlan(self.kind, "EKS: a Kubernetes manifest applied to a cluster", details, problems)
        cluster_name = settings.eks_cluster_name or "(the kubeconfig's current context)"
        how = f"EKS: the objects of {settings.manifest_file or '(no manifest_file)'} applied to cluster {cluster_name}"
        try:
            cluster = find_cluster(exp)
            details.append(f"cluster: {cluster.shown()}")
        except FmbError as exc:
            problems.append(f"{exc.message} {exc.hint}" if exc.hint else exc.message)
        details.append(f"instance type: {exp.spec.instance_type or '-'} x {exp.instance_count}")
        manifest = None
        try:
            manifest = read_manifest(exp, loaded, complete=False)
        except FmbError as exc:
            problems.append(exc.message)
        if manifest is not None and manifest.missing:
            problems.append(unfilled_problem(exp, loaded, manifest))
        if manifest is not None:
            details.append(f"manifest: {manifest.path}")
            details.extend(f"creates: {ref.shown()} ({ref.api_version})" for ref in manifest.refs)
            details.extend(f"image: {image}" for image in dict.fromkeys(i for o in manifest.objects for i in images(o)))
            details.extend(f"fills {line}" for line in manifest.filled)
        route = exp.spec.inference_spec.inference_url_format
        given = endpoint_of(exp)
        if given:
            details.append(f"endpoint: {given} (from the config)")
        elif route is not None:
            details.append(f"endpoint: http://<the Ingress address>{route} (inference_spec.inference_url_format)")
        else:
            problems.append(
                "the endpoint URL is unknown: set inference_spec.inference_url_format (e.g. /serve/infer?sentence=), "
                "appended to the Ingress address, or endpoint_url"
            )
        timeout, key = deploy_timeout(exp)
        details.append(f"ready when the model answers, within {timeout:g} s ({key})")
        return DeployPlan(self.kind, how, details, problems)

    def deploy(self, exp: ResolvedExperiment, context: DeployContext) -> Deployment:
        return start(exp, context.loaded, context.console, record=context.registry.add, forget=context.registry.remove)

    def is_running(self, deployment: Deployment) -> bool:
        """False only when the cluster says every recorded object is gone; unsure counts as running,
        so that a record is never dropped while its objects may still exist."""
        cluster, refs = _recorded(deployment)
        if not refs:
            return False
        try:
            with connect(cluster) as client:
                return any(get_object(client, ref) is not None for ref in refs)
        except (FmbError, *api_errors()):
            return True

    def describe(self, deployment: Deployment) -> str:
        cluster, refs = _recorded(deployment)
        name = deployment.resources.get("cluster") or cluster.context or "in-cluster"
        return f"eks, cluster {name}: {', '.join(r.shown() for r in refs) or 'nothing created'}"

    def remove(self, deployment: Deployment, loaded: LoadedConfig) -> None:
        cluster, refs = _recorded(deployment)
        problems = delete_objects(cluster, refs)
        if problems:
            raise FmbError(
                f"could not remove everything fmb deployed for {deployment.experiment} on EKS: {'; '.join(problems)}.",
                hint="The record is kept; run `fmb cleanup CONFIG` again, or delete them with kubectl.",
            )
