"""The Kubernetes cluster of an EKS deployment: which one, how to reach it, deleting objects in it.

The cluster comes from the kubeconfig (``eks.kubeconfig``, ``$KUBECONFIG``,
``~/.kube/config``; ``aws eks update-kubeconfig`` writes the context that fmb picks by
the cluster's name) or, inside a pod, from its service account. fmb talks to it through
the official Kubernetes client's dynamic client (fmb's ``eks`` extra), imported only when
needed; it never runs aws or kubectl.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fmb.config import ResolvedExperiment
from fmb.deployers.eks_manifest import ObjectRef, eks_settings
from fmb.errors import FmbError

REQUEST_TIMEOUT_S = 30
INSTALL_HINT = "Install fmb's eks extra: pip install 'fmb[eks]'."


@dataclass(frozen=True)
class Cluster:
    """Which cluster to talk to: a kubeconfig file and context, or the pod's own cluster (in_cluster)."""

    kubeconfig: str | None
    context: str | None
    in_cluster: bool = False

    def shown(self) -> str:
        if self.in_cluster:
            return "in-cluster service account"
        return f"kubeconfig {self.kubeconfig}, context {self.context or '(current)'}"


def kubernetes_module() -> Any:
    try:
        import kubernetes
    except ImportError:
        raise FmbError("deploying to EKS needs the Kubernetes Python client (kubernetes).", hint=INSTALL_HINT) from None
    return kubernetes


def find_cluster(exp: ResolvedExperiment) -> Cluster:
    """The kubeconfig file and context for the experiment (read locally; no server is asked)."""
    settings = eks_settings(exp)
    kubernetes = kubernetes_module()
    path = settings.kubeconfig or os.environ.get("KUBECONFIG")
    if not path and Path("~/.kube/config").expanduser().is_file():
        path = "~/.kube/config"
    if not path:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            return Cluster(None, None, in_cluster=True)
        raise FmbError(
            f"experiment {exp.name!r}: no kubeconfig to reach EKS cluster {settings.eks_cluster_name or '(unnamed)'}.",
            hint="Run `aws eks update-kubeconfig --name CLUSTER`, or set eks.kubeconfig or $KUBECONFIG.",
        )
    shown = ", ".join(os.path.expanduser(p) for p in path.split(os.pathsep))
    try:
        contexts, active = kubernetes.config.list_kube_config_contexts(config_file=os.path.expanduser(path))
    except (kubernetes.config.ConfigException, OSError, yaml.YAMLError, TypeError, KeyError) as exc:
        raise FmbError(f"experiment {exp.name!r}: the kubeconfig {shown} cannot be read ({exc}).") from None
    names = [c.get("name") for c in contexts or []]
    if settings.context:
        if settings.context not in names:
            raise FmbError(
                f"experiment {exp.name!r}: eks.context {settings.context!r} is not in the kubeconfig {shown} "
                f"(contexts: {', '.join(map(str, names)) or 'none'})."
            )
        return Cluster(os.path.expanduser(path), settings.context)
    wanted = settings.eks_cluster_name
    if not wanted:
        return Cluster(os.path.expanduser(path), (active or {}).get("name"))
    matching = [c["name"] for c in contexts or [] if _names_cluster(c, wanted)]
    if not matching:
        raise FmbError(
            f"experiment {exp.name!r}: the kubeconfig {shown} has no context for EKS cluster {wanted!r} "
            f"(eks.eks_cluster_name; contexts: {', '.join(map(str, names)) or 'none'}).",
            hint=f"Run `aws eks update-kubeconfig --name {wanted}`, or name the context in eks.context.",
        )
    chosen = (active or {}).get("name") if (active or {}).get("name") in matching else matching[0]
    return Cluster(os.path.expanduser(path), chosen)


def _names_cluster(context: dict[str, Any], wanted: str) -> bool:
    """Whether a kubeconfig context is for the EKS cluster ``wanted`` (aws eks update-kubeconfig names the
    cluster by its ARN, eksctl by NAME.REGION.eksctl.io)."""
    cluster = str((context.get("context") or {}).get("cluster") or "")
    return cluster == wanted or cluster.endswith(f"/{wanted}") or cluster.startswith(f"{wanted}.")


def api_errors() -> tuple[type[BaseException], ...]:
    import urllib3
    from kubernetes.client.exceptions import ApiException, OpenApiException
    from kubernetes.config import ConfigException
    from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError

    return (
        DynamicApiError,
        ResourceNotFoundError,
        ApiException,
        OpenApiException,
        ConfigException,
        urllib3.exceptions.HTTPError,
        OSError,
        ValueError,
    )


def api_message(exc: BaseException) -> str:
    """What the API server (or the client) said, without the client's dump of response headers."""
    body = getattr(exc, "body", None)
    status = getattr(exc, "status", None)
    if body:
        try:
            said = json.loads(body).get("message")
        except (ValueError, AttributeError):
            said = None
        return f"HTTP {status}: {said or str(body)[:300]}"
    if type(exc).__name__ == "ResourceNotFoundError":
        return f"the cluster does not serve this kind ({exc})"
    if status:
        return f"HTTP {status}: {getattr(exc, 'reason', '')}"
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def connect(cluster: Cluster) -> Iterator[Any]:
    """A dynamic client for the cluster; its discovery cache lives and dies with the connection."""
    kubernetes = kubernetes_module()
    from kubernetes.dynamic import DynamicClient

    try:
        if cluster.in_cluster:
            configuration = kubernetes.client.Configuration()
            kubernetes.config.load_incluster_config(client_configuration=configuration)
            api_client = kubernetes.client.ApiClient(configuration)
        else:
            api_client = kubernetes.config.new_client_from_config(
                config_file=cluster.kubeconfig, context=cluster.context, persist_config=False
            )
    except api_errors() as exc:
        raise FmbError(f"cannot use the {cluster.shown()} ({api_message(exc)}).") from None
    with tempfile.TemporaryDirectory(prefix="fmb-kube-") as folder, api_client:
        try:
            client = DynamicClient(api_client, cache_file=str(Path(folder) / "discovery.json"))
        except api_errors() as exc:
            raise FmbError(f"cannot reach the Kubernetes API ({cluster.shown()}): {api_message(exc)}.") from None
        yield client


def resource_of(client: Any, ref: ObjectRef) -> Any:
    return client.resources.get(api_version=ref.api_version, kind=ref.kind)


def get_object(client: Any, ref: ObjectRef) -> Any:
    from kubernetes.dynamic.exceptions import NotFoundError

    try:
        return resource_of(client, ref).get(name=ref.name, namespace=ref.namespace, _request_timeout=REQUEST_TIMEOUT_S)
    except NotFoundError:
        return None


def delete_objects(cluster: Cluster, refs: list[ObjectRef]) -> list[str]:
    """Delete exactly these objects, last created first; already gone is fine. The problems, if any."""
    if not refs:
        return []
    from kubernetes.dynamic.exceptions import NotFoundError

    problems = []
    try:
        with connect(cluster) as client:
            for ref in reversed(refs):
                try:
                    resource_of(client, ref).delete(
                        name=ref.name,
                        namespace=ref.namespace,
                        body={"propagationPolicy": "Background"},
                        _request_timeout=REQUEST_TIMEOUT_S,
                    )
                except NotFoundError:
                    continue
                except api_errors() as exc:
                    problems.append(f"{ref.shown()}: {api_message(exc)}")
    except FmbError as exc:
        problems.append(exc.message)
    return problems
