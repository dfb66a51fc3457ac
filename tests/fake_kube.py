"""A small Kubernetes API server for tests, and a Ray Serve route for the model behind it.

:class:`FakeKube` speaks enough of the Kubernetes REST API over real HTTP for the official
Python client (its dynamic client included) to run unchanged against it: version and
discovery documents, and create (201, 409 when it exists, 404 when the namespace does not),
get, list and delete (404 when missing) for the kinds of FMBench's EKS manifests. It checks
the bearer token of the kubeconfig it writes, keeps every object in memory and logs every
request. :class:`FakeRayServe` answers ``GET /serve/infer?sentence=...`` like the Ray Serve
applications of those manifests (the prompt echoed, then the answer, as a JSON list).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

# (group, version) -> [(plural, kind, namespaced)]; "" is the core group (/api/v1).
RESOURCES: dict[tuple[str, str], list[tuple[str, str, bool]]] = {
    ("", "v1"): [
        ("namespaces", "Namespace", False),
        ("services", "Service", True),
        ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True),
        ("pods", "Pod", True),
    ],
    ("apps", "v1"): [("deployments", "Deployment", True)],
    ("networking.k8s.io", "v1"): [("ingresses", "Ingress", True)],
    ("ray.io", "v1"): [("rayservices", "RayService", True), ("rayclusters", "RayCluster", True)],
}
REASONS = {401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed", 409: "AlreadyExists", 422: "Invalid"}

Key = tuple[str, str | None, str]  # kind, namespace, name


def _api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


@dataclass
class _Route:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    namespace: str | None
    name: str | None


@dataclass
class FakeKube:
    """The API server. ``objects`` maps (kind, namespace, name) to the stored object."""

    token: str = "fake-kube-token-1234567890"
    groups: dict[tuple[str, str], list[tuple[str, str, bool]]] = field(default_factory=lambda: dict(RESOURCES))
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path), discovery included
    # kind -> HTTP status a create of that kind gets (to fail an apply half-way).
    fail_create: dict[str, int] = field(default_factory=dict)
    # kind -> called with each created object before it is stored (to play the controllers).
    on_create: dict[str, Callable[[dict[str, Any]], None]] = field(default_factory=dict)
    url: str = ""
    _uid: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- what a test sees -------------------------------------------------------------------

    def add(self, obj: dict[str, Any]) -> None:
        """An object that exists before the test (not made by fmb)."""
        meta = obj["metadata"]
        self.objects[(obj["kind"], meta.get("namespace"), meta["name"])] = obj

    def keys(self) -> set[Key]:
        return set(self.objects)

    def changes(self) -> list[tuple[str, str]]:
        """The requests that create or delete something."""
        return [(m, p) for m, p in self.requests if m in ("POST", "DELETE", "PUT", "PATCH")]

    def kubeconfig(self, path: Path, cluster: str, *, current_token: str | None = None) -> Path:
        """A kubeconfig with a context "fmb-test" for ``cluster`` (named as aws eks update-kubeconfig names
        it) and a current context "elsewhere" on the same server whose token the server refuses: a client
        that ends up in the wrong context gets 401."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": cluster, "cluster": {"server": self.url}},
                {"name": "another-cluster", "cluster": {"server": self.url}},
            ],
            "users": [
                {"name": "fmb-user", "user": {"token": self.token}},
                {"name": "stranger", "user": {"token": current_token or "not-the-token"}},
            ],
            "contexts": [
                {"name": "fmb-test", "context": {"cluster": cluster, "user": "fmb-user"}},
                {"name": "elsewhere", "context": {"cluster": "another-cluster", "user": "stranger"}},
            ],
            "current-context": "elsewhere",
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    # --- serving ----------------------------------------------------------------------------

    def route(self, path: str) -> _Route | None:
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        resources = {plural: (kind, namespaced) for plural, kind, namespaced in self.groups.get((group, version), [])}
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or rest[0] not in resources or len(rest) > 2:
            return None
        kind, namespaced = resources[rest[0]]
        if namespace is not None and not namespaced:
            return None
        return _Route(group, version, rest[0], kind, namespaced, namespace, rest[1] if len(rest) == 2 else None)

    def discovery(self, path: str) -> Any:
        if path == "/version":
            return {"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake", "platform": "linux/amd64"}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            groups = []
            for group, version in self.groups:
                if group:
                    gv = {"groupVersion": f"{group}/{version}", "version": version}
                    groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        for (group, version), resources in self.groups.items():
            if path == ("/api/v1" if not group else f"/apis/{group}/{version}"):
                return {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": _api_version(group, version),
                    "resources": [
                        {
                            "name": plural,
                            "singularName": kind.lower(),
                            "namespaced": namespaced,
                            "kind": kind,
                            "verbs": ["create", "delete", "get", "list"],
                        }
                        for plural, kind, namespaced in resources
                    ],
                }
        return None

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        found = self.discovery(path) if method == "GET" else None
        if found is not None:
            return 200, found
        route = self.route(path)
        if route is None:
            return 404, status(404, f"the server could not find the requested resource ({path})")
        with self._lock:
            if method == "POST" and route.name is None:
                return self.create(route, body)
            if route.name is None and method == "GET":
                items = [
                    o
                    for (k, ns, _), o in sorted(self.objects.items(), key=lambda kv: str(kv[0]))
                    if k == route.kind and (route.namespace is None or ns == route.namespace)
                ]
                return 200, {"kind": f"{route.kind}List", "apiVersion": "v1", "metadata": {}, "items": items}
            key = (route.kind, route.namespace, route.name or "")
            if key not in self.objects:
                return 404, status(404, f'{route.plural} "{route.name}" not found')
            if method == "GET":
                return 200, self.objects[key]
            if method == "DELETE":
                obj = self.objects.pop(key)
                if route.kind == "Namespace":  # as the namespace controller does
                    for inner in [k for k in self.objects if k[1] == route.name]:
                        del self.objects[inner]
                return 200, obj
        return 405, status(405, f"{method} is not served here")

    def create(self, route: _Route, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or body.get("kind") != route.kind:
            return 422, status(422, f"the body is not a {route.kind}")
        if body.get("apiVersion") != _api_version(route.group, route.version):
            return 422, status(422, f"apiVersion {body.get('apiVersion')!r} does not match the path")
        meta = body.get("metadata") or {}
        if route.namespaced and meta.get("namespace", route.namespace) != route.namespace:
            return 422, status(422, "the namespace of the body does not match the path")
        if route.namespaced and ("Namespace", None, route.namespace) not in self.objects:
            return 404, status(404, f'namespaces "{route.namespace}" not found')
        if route.kind in self.fail_create:
            code = self.fail_create[route.kind]
            return code, status(code, f"{route.kind} {meta.get('name')} is refused by the test")
        key = (route.kind, route.namespace, meta.get("name", ""))
        if key in self.objects:
            return 409, status(409, f'{route.plural} "{meta.get("name")}" already exists')
        stored = json.loads(json.dumps(body))
        stored["metadata"] = stored.get("metadata", {}) | {
            "uid": f"uid-{next(self._uid)}",
            "resourceVersion": "1",
            "creationTimestamp": "2025-01-01T00:00:00Z",
        }
        if route.namespaced:
            stored["metadata"]["namespace"] = route.namespace
        if route.kind in self.on_create:
            self.on_create[route.kind](stored)
        self.objects[key] = stored
        return 201, stored


def status(code: int, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": REASONS.get(code, "InternalError"),
        "code": code,
    }


def _handler(kube: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            kube.requests.append((self.command, path))
            if self.headers.get("Authorization") != f"Bearer {kube.token}":
                code, payload = 401, status(401, "Unauthorized")
            else:
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    code, payload = 400, status(400, "the body is not JSON")
                else:
                    code, payload = kube.handle(self.command, path, body)
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    return Handler


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def fake_kube(kube: FakeKube | None = None) -> Iterator[FakeKube]:
    """A running :class:`FakeKube` on a free port, stopped on exit."""
    kube = kube or FakeKube()
    with _serving(_handler(kube)) as url:
        kube.url = url
        yield kube


@dataclass
class FakeRayServe:
    """``GET /serve/infer?sentence=...``: 503 for the first ``unready`` requests, then the prompt and an answer."""

    unready: int = 0
    answer: str = " Tensor parallelism splits each layer across devices."
    prompts: list[str] = field(default_factory=list)
    url: str = ""
    port: int = 0


@contextmanager
def fake_ray_serve(serve: FakeRayServe | None = None) -> Iterator[FakeRayServe]:
    serve = serve or FakeRayServe()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != "/serve/infer":
                code, data = 404, b"not found"
            elif serve.unready > 0:
                serve.unready -= 1
                code, data = 503, b"no healthy upstream"
            else:
                sentence = parse_qs(parts.query).get("sentence", [""])[0]
                serve.prompts.append(sentence)
                code, data = 200, json.dumps([sentence + serve.answer]).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with _serving(Handler) as url:
        serve.url = url
        serve.port = int(url.rsplit(":", 1)[1])
        yield serve
