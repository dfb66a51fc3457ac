"""Configs, read data and results in S3 (or behind https://), through a local working copy.

FMBench keeps everything in buckets: a config given as ``s3://bucket/key``, a read bucket
with source data, prompt templates, tokenizers, ``hf_token.txt`` and ``pricing.yml``, and a
write bucket that receives payloads, metrics and the report. fmb works on local files
(DuckDB, dbt, the collector's atomic part files), so a remote location is used through a
local copy:

- a config or a read bucket's files are downloaded into fmb's cache
  (``$FMB_CACHE_DIR``, default ``~/.cache/fmb``) before they are read;
- a results location ``s3://bucket/prefix`` has a working copy in the cache (or the local
  results folder when the config says ``both``). A command first pulls what it reads
  (every file whose key or ETag it does not have yet), then works locally, and pushes
  what it wrote. ``fmb collect`` also pushes every few seconds while it runs, so a run
  killed on its host has its finished part files in the bucket already.

Each file goes up with one PutObject (boto3 switches to a multipart upload for large
files, which S3 also shows only once complete), so a partial upload is never visible
under its final key. fmb's part files are write-once under names no other collector
uses (see fmb.collector.writer); they are uploaded with ``If-None-Match: *``, so two
collectors can never replace each other's rows. The few files fmb rewrites (a run's row,
its cells) are uploaded again when they change. Hidden files (journals, locks, temporary
files) and dbt's own target and logs stay local.

Credentials and endpoints follow boto3's usual chain (``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_S3``, profiles, roles), and `-A` values as for every AWS call.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from fmb.errors import FmbError

if TYPE_CHECKING:
    from fmb.config.loader import LoadedConfig

# Folders of a working copy that never go up: dbt's compiled project and logs, and the
# records and logs of what was deployed on this host (server output is not redacted), and a
# Spark session's own warehouse and metastore (fmb build --target spark).
LOCAL_ONLY = ("dbt", "deployments", "spark")
MANIFEST = ".fmb-sync.json"
PUSH_INTERVAL_S = 5.0


def is_s3(value: str | os.PathLike[str] | None) -> bool:
    return isinstance(value, str) and value.startswith("s3://")


def is_remote(value: str | os.PathLike[str] | None) -> bool:
    return isinstance(value, str) and value.startswith(("s3://", "https://", "http://"))


@dataclass(frozen=True)
class S3Url:
    bucket: str
    key: str  # without a leading slash; a prefix has no trailing slash

    @classmethod
    def parse(cls, url: str, what: str = "location") -> S3Url:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise FmbError(f"{url!r} is not an S3 {what}: expected s3://BUCKET/KEY.")
        return cls(parts.netloc, parts.path.strip("/"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"

    def child(self, *names: str) -> S3Url:
        key = "/".join(p.strip("/") for p in (self.key, *names) if p and p.strip("/"))
        return S3Url(self.bucket, key)

    @property
    def prefix(self) -> str:
        """The key as a folder prefix: ``a/b/`` (empty for a bucket's top)."""
        return f"{self.key}/" if self.key else ""


def shown_url(url: str) -> str:
    """A URL without the user name and password it may carry (https://user:pw@host/...)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    return parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host).geturl()


def cache_dir() -> Path:
    return Path(os.environ.get("FMB_CACHE_DIR") or Path.home() / ".cache" / "fmb").expanduser()


def boto_session(assignments: dict[str, str] | None, region: str | None = None) -> Any:
    """A boto3 session from its usual chain, with `-A` aws_profile and access keys when given (fmb.aws too)."""
    import boto3
    from botocore.exceptions import BotoCoreError

    values = assignments or {}
    kwargs: dict[str, Any] = {"region_name": region} if region else {}
    if values.get("aws_profile"):
        kwargs["profile_name"] = values["aws_profile"]
    if values.get("aws_access_key_id"):
        kwargs["aws_access_key_id"] = values["aws_access_key_id"]
        kwargs["aws_secret_access_key"] = values.get("aws_secret_access_key")
        kwargs["aws_session_token"] = values.get("aws_session_token")
    try:
        return boto3.Session(**kwargs)
    except BotoCoreError as exc:  # a profile that does not exist, ...
        raise FmbError(f"AWS settings: {exc}") from None


def s3_client(assignments: dict[str, str] | None = None, region: str | None = None) -> Any:
    """An S3 client from boto3's chain, with `-A` credentials and endpoints as fmb.aws uses them."""
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    values = assignments or {}
    session = boto_session(assignments)
    endpoint = values.get("s3_endpoint_url") or values.get("aws_endpoint_url")
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, user_agent_extra="fmb")
    try:
        return session.client(
            "s3", region_name=region or session.region_name or "us-east-1", endpoint_url=endpoint, config=config
        )
    except (BotoCoreError, ValueError) as exc:  # a malformed endpoint URL, ...
        raise FmbError(f"AWS settings for S3: {exc}") from None


def _s3_problem(exc: Exception, url: S3Url | str, *, bucket: bool = False) -> FmbError:
    """A clear error for a failed S3 call: which URL, what S3 said, never a credential."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return FmbError(
            f"{url}: no AWS credentials were found to read or write S3.",
            hint="Set them as boto3 expects (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an instance "
            "role) or give -A aws_access_key_id=... -A aws_secret_access_key=...",
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "?")
        said = {
            "NoSuchBucket": "the bucket does not exist",
            "NoSuchKey": "there is no such key",
            "404": "the bucket does not exist" if bucket else "there is no such key",
            "AccessDenied": "access is denied",
            "403": "access is denied",
        }.get(str(code), f"S3 answered {code}: {error.get('Message', '')}".strip())
        return FmbError(f"{url}: {said}.")
    if isinstance(exc, BotoCoreError):
        return FmbError(f"{url}: S3 could not be reached ({exc}).")
    return FmbError(f"{url}: {exc}")


def _download(client: Any, url: S3Url, dest: Path) -> dict[str, Any]:
    """Download one object to ``dest`` (a hidden temporary file, then a rename); its head."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.download")
    try:
        client.download_file(url.bucket, url.key, str(tmp))
        head = client.head_object(Bucket=url.bucket, Key=url.key)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise _s3_problem(exc, url) from None
    os.replace(tmp, dest)
    return dict(head)


def _cache_path(kind: str, url: S3Url) -> Path:
    return cache_dir() / kind / url.bucket / PurePosixPath(url.key)


def fetch_config(url: str, assignments: dict[str, str] | None = None) -> Path:
    """Download a config given as ``s3://`` or ``https://`` into the cache; its local path.

    The file keeps its name (FMBench's configs are found by it); the folder says where it came from.
    """
    if is_s3(url):
        where = S3Url.parse(url, "config")
        if not where.key or where.key.endswith("/"):
            raise FmbError(f"{url!r} names a bucket or folder, not a config file.")
        dest = _cache_path("configs", where)
        _download(s3_client(assignments), where, dest)
        return dest
    import httpx

    parts = urlsplit(url)
    host = f"{parts.hostname or 'host'}_{parts.port}" if parts.port else (parts.hostname or "host")
    dest = cache_dir() / "configs" / parts.scheme / quote(host, safe="") / parts.path.strip("/")
    if not parts.path.strip("/"):
        raise FmbError(f"{url!r} names no file.")
    try:
        response = httpx.get(url, follow_redirects=True, timeout=30)
    except httpx.HTTPError as exc:
        raise FmbError(f"{shown_url(url)}: the config could not be fetched ({type(exc).__name__}).") from None
    if response.status_code != 200:
        raise FmbError(f"{shown_url(url)}: the server answered {response.status_code} {response.reason_phrase}.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.download")
    tmp.write_bytes(response.content)
    os.replace(tmp, dest)
    return dest


# -- the read bucket ---------------------------------------------------------------------------


@dataclass
class ReadBucketCopy:
    """What `s3_read_data` names, copied from the read bucket into ``root``."""

    root: Path
    fetched: list[str]  # keys downloaded or found current
    missing: list[str]  # keys the config names that the bucket lacks
    hf_token: str | None  # hf_token.txt's text, kept in memory only


def copy_read_bucket(
    bucket: str,
    *,
    files: Iterable[str],
    folders: Iterable[str],
    token_key: str | None,
    assignments: dict[str, str] | None = None,
) -> ReadBucketCopy:
    """Download the named ``files`` and everything under ``folders`` of the read bucket into the cache.

    FMBench's hf_token.txt is read into memory and never written to disk.
    """
    client = s3_client(assignments)
    top = S3Url(bucket, "")
    root = _cache_path("read", top)
    fetched: list[str] = []
    missing: list[str] = []
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as exc:
        raise _s3_problem(exc, top, bucket=True) from None
    wanted = [f.strip("/") for f in files if f.strip("/")]
    for folder in folders:
        listed = [key for key, _ in _list_under(client, top.child(folder))]
        wanted.extend(listed)
    for key in dict.fromkeys(wanted):
        if key == token_key:
            continue
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if _is_missing(exc):
                missing.append(key)
                continue
            raise _s3_problem(exc, S3Url(bucket, key)) from None
        dest = root / PurePosixPath(key)
        if not _same(dest, head):
            _download(client, S3Url(bucket, key), dest)
        fetched.append(key)
    token = None
    if token_key:
        try:
            body = client.get_object(Bucket=bucket, Key=token_key)["Body"].read()
            token = body.decode("utf-8", errors="replace").strip() or None
        except Exception as exc:
            if not _is_missing(exc):
                raise _s3_problem(exc, S3Url(bucket, token_key)) from None
    root.mkdir(parents=True, exist_ok=True)
    return ReadBucketCopy(root, fetched, missing, token)


def _is_missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey")


def _same(path: Path, head: dict[str, Any]) -> bool:
    """Whether a local copy is the object's current version (same size, not older)."""
    try:
        stat = path.stat()
    except OSError:
        return False
    modified = head.get("LastModified")
    newer = modified is not None and modified.timestamp() > stat.st_mtime + 1
    return stat.st_size == head.get("ContentLength") and not newer


def _list_under(client: Any, where: S3Url) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, listing entry) of the object named by ``where``, or of every object in the folder it names."""
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=where.bucket, Prefix=where.key)
        for page in pages:
            for entry in page.get("Contents", []):
                key = entry["Key"]
                if (key == where.key and key) or (key.startswith(where.prefix) and not key.endswith("/")):
                    yield key, entry
    except Exception as exc:
        raise _s3_problem(exc, where) from None


# -- results in a bucket -----------------------------------------------------------------------


def _is_local_only(relative: PurePosixPath) -> bool:
    return (
        any(part.startswith(".") for part in relative.parts)
        or relative.parts[0] in LOCAL_ONLY
        or relative.suffix == ".wal"  # DuckDB's log of a warehouse still open
    )


def _write_once(relative: PurePosixPath) -> bool:
    """Request part files never change once written: another collector's file under the same key is a clash."""
    return relative.parts[:2] == ("raw", "requests") and relative.name.startswith("part-")


def _deleted_with_local(relative: PurePosixPath) -> bool:
    """Files whose removal from the working copy is pushed too: a payload file prepare dropped must not come back."""
    return relative.parts[0] == "payloads"


def _md5_etag(path: Path) -> str:
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f'"{digest.hexdigest()}"'


class Mirror:
    """A local working copy of a results location in S3: pull what a command reads, push what it wrote.

    The manifest (``.fmb-sync.json`` in the working copy) remembers, per relative path, the
    local size and modification time last pushed or pulled and the object's ETag, so each
    pull and push moves only what changed. A local file changed since its last sync is
    never replaced by a pull: it is pushed next.
    """

    def __init__(self, local: Path, remote: S3Url, assignments: dict[str, str] | None = None) -> None:
        self.local = local
        self.remote = remote
        self._client = s3_client(assignments)
        self._lock = threading.Lock()
        self._manifest_path = local / MANIFEST
        self._manifest: dict[str, dict[str, Any]] = self._read_manifest()

    def __repr__(self) -> str:
        return f"Mirror({self.local} <-> {self.remote})"

    def _read_manifest(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self._manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save_manifest(self) -> None:
        self.local.mkdir(parents=True, exist_ok=True)
        tmp = self._manifest_path.with_name(f"{MANIFEST}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._manifest, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self._manifest_path)

    def check(self) -> None:
        """Fail early, with the URL, when the bucket cannot be used."""
        try:
            self._client.head_bucket(Bucket=self.remote.bucket)
        except Exception as exc:
            raise _s3_problem(exc, self.remote, bucket=True) from None

    def pull(self, *folders: str) -> int:
        """Download every object under the given folders (all when none) that the copy lacks; how many."""
        count = 0
        with self._lock:
            try:
                for folder in folders or ("",):
                    for key, entry in _list_under(self._client, self.remote.child(folder)):
                        relative = PurePosixPath(key[len(self.remote.prefix) :])
                        if not relative.parts or _is_local_only(relative):
                            continue
                        name = str(relative)
                        known = self._manifest.get(name)
                        dest = self.local / relative
                        if known and not self._unchanged(dest, known) and dest.exists():
                            continue  # changed here since the last sync: the next push sends it
                        if known and known.get("etag") == entry.get("ETag"):
                            continue
                        if not known and dest.exists() and _md5_etag(dest) == entry.get("ETag"):
                            self._record(name, dest, entry["ETag"])
                            continue
                        _download(self._client, S3Url(self.remote.bucket, key), dest)
                        self._record(name, dest, entry["ETag"])
                        count += 1
            finally:
                self._save_manifest()
        return count

    def _record(self, name: str, path: Path, etag: str) -> None:
        stat = path.stat()
        self._manifest[name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "etag": etag}

    @staticmethod
    def _unchanged(path: Path, known: dict[str, Any]) -> bool:
        try:
            stat = path.stat()
        except OSError:
            return False
        return stat.st_size == known.get("size") and stat.st_mtime_ns == known.get("mtime_ns")

    def push(self, *folders: str) -> int:
        """Upload every file of the working copy (under ``folders``, when given) that is new or changed
        since it was last pushed or pulled; how many. Every file is tried; the first failure is raised
        after the others went up."""
        count = 0
        failure: FmbError | None = None
        with self._lock:
            try:
                for path in sorted(self._files()):
                    relative = PurePosixPath(path.relative_to(self.local).as_posix())
                    if folders and relative.parts[0] not in folders:
                        continue
                    name = str(relative)
                    known = self._manifest.get(name)
                    if known and self._unchanged(path, known):
                        continue
                    try:
                        stat = path.stat()
                        etag = self._upload(path, relative, first=known is None)
                    except FileNotFoundError:  # replaced or removed while we looked
                        continue
                    except FmbError as exc:
                        failure = failure or exc
                        continue
                    self._manifest[name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "etag": etag}
                    count += 1
                if not folders or "payloads" in folders:
                    self._push_deletions()
            finally:
                self._save_manifest()
        if failure is not None:
            raise failure
        return count

    def _push_deletions(self) -> None:
        for name in [n for n in self._manifest if _deleted_with_local(PurePosixPath(n))]:
            if not (self.local / name).exists():
                key = self.remote.child(name)
                try:
                    self._client.delete_object(Bucket=key.bucket, Key=key.key)
                except Exception as exc:
                    raise _s3_problem(exc, key) from None
                del self._manifest[name]

    def _files(self) -> Iterator[Path]:
        for folder, dirs, files in os.walk(self.local):
            here = Path(folder)
            relative_dir = here.relative_to(self.local)
            dirs[:] = [d for d in dirs if not d.startswith(".") and not (relative_dir == Path(".") and d in LOCAL_ONLY)]
            for name in files:
                if not _is_local_only(PurePosixPath((relative_dir / name).as_posix())):
                    yield here / name

    def _upload(self, path: Path, relative: PurePosixPath, *, first: bool) -> str:
        from botocore.exceptions import ClientError

        key = self.remote.child(str(relative))
        if not (first and _write_once(relative)):
            # A managed transfer: one PutObject, or a multipart upload above 8 MB (a warehouse),
            # which S3 also shows under its key only once complete.
            try:
                self._client.upload_file(str(path), key.bucket, key.key)
                return str(self._client.head_object(Bucket=key.bucket, Key=key.key).get("ETag", ""))
            except FileNotFoundError:
                raise
            except Exception as exc:
                raise _s3_problem(exc, key) from None
        body = path.read_bytes()  # a request part: a few MB at most
        try:
            answer = self._client.put_object(Bucket=key.bucket, Key=key.key, Body=body, IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
                raise _s3_problem(exc, key) from None
            there = self._client.head_object(Bucket=key.bucket, Key=key.key).get("ETag")
            if there == _md5_etag(path):  # our own file, pushed before the manifest could say so
                return str(there)
            raise FmbError(
                f"{key}: another collector already wrote a different part file under this key; fmb never "
                f"replaces one, so this copy's rows stay in the local folder {path.parent}.",
                hint="Give each collector of a run its own shard (fmb collect --shard I/N).",
            ) from None
        except Exception as exc:
            raise _s3_problem(exc, key) from None
        return str(answer.get("ETag", ""))

    @contextmanager
    def pushing(self, interval_s: float = PUSH_INTERVAL_S, folders: tuple[str, ...] = ()) -> Iterator[None]:
        """Push ``folders`` every ``interval_s`` seconds in a thread while the block runs, and everything
        once at its end."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval_s):
                with suppress(Exception):  # S3 away for a moment: the next push, or the final one, tries again
                    self.push(*folders)

        thread = threading.Thread(target=loop, name="fmb-s3-push", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.push()


def working_copy(remote: S3Url) -> Path:
    """The cache folder that stands for a results location in S3."""
    return _cache_path("results", remote)


@dataclass
class ResultsPlace:
    """Where a command's results live: a local folder, mirrored to S3 when ``mirror`` is set."""

    local: Path
    mirror: Mirror | None = None
    both: bool = False  # the local folder is the user's (aws.s3_and_or_local_file_system: both)

    def __str__(self) -> str:
        """What --results to give to work on the same place again."""
        return str(self.mirror.remote) if self.mirror and not self.both else str(self.local)

    @contextmanager
    def session(self, *pull: str, push: bool = True, background: bool = False) -> Iterator[Path]:
        """Pull ``pull``'s folders (or nothing), run the block on the local copy, push what changed.

        The push also runs when the block fails or is interrupted: what was measured goes up.
        With ``background`` it also pushes every few seconds while the block runs.
        """
        if self.mirror is None:
            yield self.local
            return
        self.local.mkdir(parents=True, exist_ok=True)
        for folder in pull:
            self.mirror.pull(folder)
        if not push:
            yield self.local
            return
        if background:  # only files written whole: the warehouse and report are pushed at the end
            with self.mirror.pushing(folders=("raw", "payloads")):
                yield self.local
        else:
            try:
                yield self.local
            finally:
                self.mirror.push()


def config_write_location(loaded: LoadedConfig) -> tuple[S3Url, str] | None:
    """The write bucket location the config's ``aws`` section puts results in, and its mode (s3, both).

    ``aws.s3_and_or_local_file_system`` says so; without it, a config fetched from S3 writes to
    its bucket (FMBench's way) unless the bucket is fmb's stand-in for `{write_bucket}`, and a
    local config writes to a local folder. The results live under ``dir_paths.data_prefix``.
    """
    from fmb.errors import ConfigError

    aws = loaded.config.aws
    mode = aws.s3_and_or_local_file_system
    stand_in = "write_bucket" not in loaded.assignments and not os.environ.get("FMB_WRITE_BUCKET")
    if mode is None:
        if not (is_s3(loaded.source) and aws.bucket) or (stand_in and aws.bucket == "fmb-local-write"):
            return None
        mode = "s3"
    if mode == "local":
        return None
    if not aws.bucket or (stand_in and aws.bucket == "fmb-local-write"):
        raise ConfigError(
            loaded.shown_path,
            f"s3_and_or_local_file_system is {mode}, but no write bucket is named.",
            key="aws.bucket",
            hint="Give it: -A write_bucket=BUCKET (or set FMB_WRITE_BUCKET), or --results s3://BUCKET/PREFIX.",
        )
    prefix = (loaded.config.dir_paths.data_prefix or "data").strip("/")
    return S3Url(aws.bucket, prefix), mode


def results_place(
    given: str | None, loaded: LoadedConfig | None = None, assignments: dict[str, str] | None = None
) -> ResultsPlace:
    """Resolve ``--results``: a folder, or ``s3://bucket/prefix``; without it, what the config says, else ./results."""
    if given is not None and not is_remote(given):
        return ResultsPlace(Path(given))
    if given is not None and not is_s3(given):
        raise FmbError(f"--results {given}: results live in a folder or in S3 (s3://BUCKET/PREFIX), not at a URL.")
    if given is not None:
        remote = S3Url.parse(given, "results location")
        local = working_copy(remote)
    else:
        found = config_write_location(loaded) if loaded is not None else None
        if found is None:
            return ResultsPlace(Path("results"))
        remote, mode = found
        aws = loaded.config.aws if loaded is not None else None
        both = mode == "both"
        local = Path(aws.local_file_system_path or "results").expanduser() if both and aws else working_copy(remote)
        assignments = loaded.assignments if loaded is not None else assignments
        mirror = Mirror(local, remote, assignments)
        mirror.check()
        return ResultsPlace(local, mirror, both)
    mirror = Mirror(local, remote, assignments)
    mirror.check()
    return ResultsPlace(local, mirror)


def fsspec_s3(assignments: dict[str, str] | None = None) -> Any:
    """An fsspec filesystem for ``s3://`` paths (for DuckDB): pyarrow's S3 client, set up as boto3's.

    pyarrow does not read boto3's configuration (``AWS_ENDPOINT_URL_S3``, profiles), so the
    endpoint, region and credentials are taken from a boto3 client and handed over.
    """
    import pyarrow.fs
    from fsspec.implementations.arrow import ArrowFSWrapper

    class S3Filesystem(ArrowFSWrapper):
        protocol = ("s3", "s3a")

    client = s3_client(assignments)
    credentials = boto_session(assignments).get_credentials()
    if credentials is None:
        raise FmbError("no AWS credentials were found to read S3 from the warehouse (FMB_RAW / FMB_MARTS).")
    frozen = credentials.get_frozen_credentials()
    endpoint = urlsplit(client.meta.endpoint_url)
    aws_default = endpoint.netloc.endswith(".amazonaws.com")
    arrow = pyarrow.fs.S3FileSystem(
        access_key=frozen.access_key,
        secret_key=frozen.secret_key,
        session_token=frozen.token,
        region=client.meta.region_name,
        endpoint_override=None if aws_default else endpoint.netloc,
        scheme=endpoint.scheme,
    )
    return S3Filesystem(arrow)
