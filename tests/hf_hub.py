"""A stand-in for the Hugging Face hub: enough of its HTTP protocol for huggingface_hub's own client.

It serves, from memory, repositories (models and datasets) with branches of files:

- ``GET /api/{models|datasets}/ORG/NAME/revision/REV``: the repo's info (``sha``, ``siblings``, ``gated``);
- ``HEAD|GET /[datasets/]ORG/NAME/resolve/REV/PATH``: a file, with the headers huggingface_hub
  checks (``X-Repo-Commit``, ``ETag``, ``Content-Length``). Large files (Parquet, tokenizer.json)
  are served as the hub serves LFS files: a 302 to a content-addressed URL on another origin, a
  second server standing in for the hub's CDN (``/lfs/SHA256``), with ``X-Linked-Etag`` and
  ``X-Linked-Size``;
- errors as the hub writes them: ``X-Error-Code`` RepoNotFound, RevisionNotFound, EntryNotFound
  and, for a gated repository asked without its token, GatedRepo (401).

Every request is recorded (method, path, whether it carried the right token) for the tests.
Both servers bind port 0 on 127.0.0.1 and run in threads while the context is open.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".parquet", "tokenizer.json")


@dataclass
class Repo:
    kind: str  # "model" or "dataset"
    repo_id: str
    branches: dict[str, dict[str, bytes]]
    token: str | None = None  # gated: files only with this token

    def commit(self, branch: str) -> str:
        digest = hashlib.sha1(f"{self.repo_id}@{branch}".encode())
        for path, data in sorted(self.branches[branch].items()):
            digest.update(path.encode() + b"\0" + data)
        return digest.hexdigest()


@dataclass
class Request:
    server: str  # "hub" or "cdn"
    method: str
    path: str
    authorized: bool  # carried "Bearer <the repo's token>"
    authorization: str | None


@dataclass
class StandInHub:
    repos: dict[tuple[str, str], Repo] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    cdn_url: str = ""
    _blobs: dict[str, bytes] = field(default_factory=dict)

    def add(self, kind: str, repo_id: str, branches: dict[str, dict[str, bytes]], token: str | None = None) -> Repo:
        repo = Repo(kind, repo_id, branches, token)
        self.repos[(kind, repo_id)] = repo
        for files in branches.values():
            for data in files.values():
                self._blobs[hashlib.sha256(data).hexdigest()] = data
        return repo


def _git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    hub: StandInHub
    server_name: str  # "hub" or "cdn"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _send(self, status: int, headers: dict[str, str], data: bytes = b"", body: bool = True) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body and data:
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, body: bool, extra: dict[str, str] | None = None) -> None:
        data = json.dumps({"error": message}).encode()
        headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}
        self._send(status, headers | (extra or {}), data, body)

    def _answer(self, body: bool) -> None:
        path = urlsplit(self.path).path
        parts = path.strip("/").split("/")
        auth = self.headers.get("Authorization")
        repo = self._repo(parts)
        self.hub.requests.append(
            Request(
                self.server_name, self.command, path, bool(repo and repo.token and auth == f"Bearer {repo.token}"), auth
            )
        )
        if self.server_name == "cdn":
            if parts[0] == "lfs" and len(parts) == 2 and parts[1] in self.hub._blobs:
                data = self.hub._blobs[parts[1]]
                return self._send(200, {"Content-Type": "application/octet-stream"}, data, body)
            return self._send(404, {}, b"no such object", body)
        if parts[0] == "api" and len(parts) == 6 and parts[4] == "revision":
            return self._info(repo, unquote(parts[5]), f"{parts[2]}/{parts[3]}", body)
        offset = 1 if parts[0] == "datasets" else 0
        if len(parts) >= offset + 5 and parts[offset + 2] == "resolve":
            return self._resolve(repo, unquote(parts[offset + 3]), "/".join(parts[offset + 4 :]), body)
        self._error(404, "NotFound", f"no route for {path}", body)

    def _repo(self, parts: list[str]) -> Repo | None:
        if parts[0] == "api" and len(parts) >= 4:
            return self.hub.repos.get((parts[1].removesuffix("s"), f"{parts[2]}/{parts[3]}"))
        if parts[0] == "datasets" and len(parts) >= 3:
            return self.hub.repos.get(("dataset", f"{parts[1]}/{parts[2]}"))
        if len(parts) >= 2:
            return self.hub.repos.get(("model", f"{parts[0]}/{parts[1]}"))
        return None

    def _info(self, repo: Repo | None, branch: str, repo_id: str, body: bool) -> None:
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found", body)
        if branch not in repo.branches:
            return self._error(404, "RevisionNotFound", "Invalid rev id: " + branch, body)
        info = {
            "id": repo.repo_id,
            "sha": repo.commit(branch),
            "private": False,
            "gated": "manual" if repo.token else False,
            "siblings": [{"rfilename": name} for name in sorted(repo.branches[branch])],
        }
        self._send(200, {"Content-Type": "application/json"}, json.dumps(info).encode(), body)

    def _resolve(self, repo: Repo | None, branch: str, filename: str, body: bool) -> None:
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found", body)
        if repo.token and self.headers.get("Authorization") != f"Bearer {repo.token}":
            return self._error(
                401,
                "GatedRepo",
                f"Access to {repo.kind} {repo.repo_id} is restricted. You must have access to it and be authenticated.",
                body,
            )
        if branch not in repo.branches:
            return self._error(404, "RevisionNotFound", "Invalid rev id: " + branch, body)
        commit = repo.commit(branch)
        data = repo.branches[branch].get(unquote(filename))
        if data is None:
            return self._error(404, "EntryNotFound", f"{filename} does not exist", body, {"X-Repo-Commit": commit})
        if unquote(filename).endswith(LFS_SUFFIXES):
            sha256 = hashlib.sha256(data).hexdigest()
            headers = {
                "Location": f"{self.hub.cdn_url}/lfs/{sha256}",
                "X-Repo-Commit": commit,
                "X-Linked-Etag": f'"{sha256}"',
                "X-Linked-Size": str(len(data)),
                "ETag": f'"{_git_blob_sha(sha256.encode())}"',
            }
            return self._send(302, headers, b"", body)
        headers = {"X-Repo-Commit": commit, "ETag": f'"{_git_blob_sha(data)}"'}
        self._send(200, headers, data, body)


@contextmanager
def _serving(hub: StandInHub, name: str) -> Iterator[str]:
    handler = type("Handler", (_Handler,), {"hub": hub, "server_name": name})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def stand_in_hub(hub: StandInHub | None = None) -> Iterator[StandInHub]:
    """Serve ``hub`` and its CDN on 127.0.0.1 (free ports) while the context is open."""
    hub = hub or StandInHub()
    with _serving(hub, "hub") as url, _serving(hub, "cdn") as cdn_url:
        hub.url, hub.cdn_url = url, cdn_url
        yield hub
