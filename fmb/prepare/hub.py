"""Hugging Face hub inputs: ``hf:`` datasets and hub tokenizers, through huggingface_hub's cache.

Files are fetched with ``huggingface_hub`` into its usual cache (``$HF_HUB_CACHE``, else
``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``) from ``$HF_ENDPOINT`` (default
https://huggingface.co), and read from that cache when the hub cannot be reached or
``HF_HUB_OFFLINE=1``. The settings are read when fmb asks, not when huggingface_hub is
imported. The token is FMBench's ``hf_token.txt`` (the read folder's scripts_prefix), else
``$HF_TOKEN``; it is sent to the hub and never printed.

A dataset entry is FMBench's ``hf:ORG/NAME/SUBSET/SPLIT`` (``SUBSET`` is ``default`` for a
dataset without subsets; without ``SPLIT``, the first of train, validation and test that
the dataset has). fmb looks for the split's files on the repository's main branch, then on
the Parquet branch the hub writes for most datasets (``refs/convert/parquet``); the first
layout that has files wins:

- main: ``SUBSET/SPLIT-*.EXT``, ``SUBSET/SPLIT.EXT`` or ``SUBSET/SPLIT/*.EXT``; for
  ``default`` also ``data/SPLIT-*.EXT``, ``data/SPLIT.EXT``, ``SPLIT-*.EXT`` and ``SPLIT.EXT``
  (the layouts ``push_to_hub`` and most uploads use), where EXT is parquet, jsonl or json;
- refs/convert/parquet: ``SUBSET/SPLIT/*.parquet``, else ``SUBSET/partial-SPLIT/*.parquet``.

Datasets defined only by a loading script or an archive (LongBench's ``data.zip``) are read
from their Parquet branch. A tokenizer is a model repository's ``tokenizer.json``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fmb.errors import PrepareError

DEFAULT_ENDPOINT = "https://huggingface.co"
CONVERTED = "refs/convert/parquet"
SPLITS_WHEN_NONE_NAMED = ("train", "validation", "test")
EXTENSIONS = ("parquet", "jsonl", "json")
INFO_TIMEOUT_S = 10.0
# A hub id: "name" or "org/name", letters, digits and -_. (no path-like ./ or ~ start).
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def looks_like_hub_id(text: str) -> bool:
    return bool(HUB_ID.fullmatch(text)) and not Path(text).expanduser().exists()


@dataclass
class Hub:
    """Where and how fmb talks to the hub, read from the environment when made."""

    endpoint: str
    cache_dir: Path
    offline: bool
    token: str | None = None
    token_origin: str | None = None
    token_file: Path | None = None  # where FMBench keeps the token, named in errors
    failure: Exception | None = None  # why the hub could not be reached, once it could not
    notes: list[str] = field(default_factory=list)  # where each hf: dataset came from
    _listings: dict[tuple[str, str, str], list[str] | None] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(
        cls, token: tuple[str, str] | None = None, token_file: Path | None = None, *, cache_only: bool = False
    ) -> Hub:
        """The settings in the environment now; ``cache_only`` never asks the hub (as HF_HUB_OFFLINE=1)."""
        if os.environ.get("HF_HUB_CACHE"):
            cache = Path(os.environ["HF_HUB_CACHE"])
        elif os.environ.get("HF_HOME"):
            cache = Path(os.environ["HF_HOME"]) / "hub"
        else:
            base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
            cache = Path(base) / "huggingface" / "hub"
        return cls(
            endpoint=(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/"),
            cache_dir=cache.expanduser(),
            offline=cache_only
            or _truthy(os.environ.get("HF_HUB_OFFLINE"))
            or _truthy(os.environ.get("TRANSFORMERS_OFFLINE")),
            token=token[0] if token else None,
            token_origin=token[1] if token else None,
            token_file=token_file,
        )

    @property
    def where(self) -> str:
        return _without_userinfo(self.endpoint)

    # -- errors -------------------------------------------------------------------------

    def _token_hint(self, *, refused: bool) -> str:
        """What to do about the token: ``refused`` when the hub turned the request down for want of one."""
        if self.token_origin:
            if refused:
                return (
                    f"The token from {self.token_origin} was sent and refused: check that it is valid and that "
                    "its account was granted access on the repository's page."
                )
            return f"If it is private, the token from {self.token_origin} needs access to it."
        folder = f"{self.token_file.parent}/" if self.token_file else "the read folder's scripts_prefix"
        todo = f"HF_TOKEN or put FMBench's hf_token.txt in {folder}"
        return f"Set {todo}." if refused else f"If it is private, set {todo}."

    def _explain(self, exc: Exception, what: str, repo: str, kind: str) -> PrepareError:
        """A PrepareError saying why ``what`` (from ``repo``) could not be had; never the token."""
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            HfHubHTTPError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        page = f"{self.where}/{'datasets/' if kind == 'dataset' else ''}{repo}"
        if isinstance(exc, GatedRepoError):
            return PrepareError(
                f"{what}: the {kind} {repo} is gated on {self.where}: it needs a token, and fmb has "
                f"{'one that was refused' if self.token_origin else 'none'}.",
                hint=self._token_hint(refused=True) + f" Ask for access at {page}.",
            )
        if isinstance(exc, RepositoryNotFoundError):
            return PrepareError(
                f"{what}: the {kind} {repo} does not exist on {self.where} (or it is private and needs a token"
                f"{' other than the one from ' + str(self.token_origin) if self.token_origin else ''}).",
                hint=f"Check the name at {page}. " + self._token_hint(refused=False),
            )
        if isinstance(exc, RevisionNotFoundError):
            return PrepareError(f"{what}: the {kind} {repo} has no such branch on {self.where}.")
        if isinstance(exc, EntryNotFoundError) and not _is_local_miss(exc):
            return PrepareError(f"{what}: the {kind} {repo} on {self.where} has no such file.")
        if isinstance(exc, HfHubHTTPError) and exc.response is not None and exc.response.status_code in (401, 403):
            return PrepareError(
                f"{what}: {self.where} refused access to the {kind} {repo} (HTTP {exc.response.status_code}).",
                hint=self._token_hint(refused=True),
            )
        return self.unreachable(what, exc)

    def unreachable(self, what: str, exc: Exception | None) -> PrepareError:
        if self.offline and self.failure is None:
            reason = "HF_HUB_OFFLINE=1 forbids downloads"
        else:
            reason = f"the hub could not be reached at {self.where} ({_short(exc)})"
        return PrepareError(
            f"{what}: not in the Hugging Face cache ({self.cache_dir}) and {reason}.",
            hint="Run once where the hub (or a mirror set as HF_ENDPOINT) can be reached to fill the cache, "
            "or point HF_HUB_CACHE at a cache that holds it.",
        )

    # -- network ------------------------------------------------------------------------

    def _api(self) -> Any:
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint, token=self.token)

    def listing(self, repo: str, kind: str, revision: str, what: str) -> list[str] | None:
        """The files of ``repo`` at ``revision``; None when the branch does not exist.

        Offline, or once the hub could not be reached: the files of the cached snapshot of that
        branch, None when it is not cached.
        """
        key = (kind, repo, revision)
        if key in self._listings:
            return self._listings[key]
        from huggingface_hub.errors import HfHubHTTPError, HFValidationError, RevisionNotFoundError

        files: list[str] | None
        if self.offline:
            files = self._cached_listing(repo, kind, revision)
        else:
            api = self._api()
            info_call = api.dataset_info if kind == "dataset" else api.model_info
            try:
                info = info_call(repo, revision=revision, timeout=INFO_TIMEOUT_S)
            except RevisionNotFoundError:
                files = None
            except HFValidationError as exc:
                raise PrepareError(f"{what}: {repo!r} is not a hub repository id ({exc}).") from None
            except HfHubHTTPError as exc:
                status = exc.response.status_code if exc.response is not None else None
                if status is not None and status < 500 and status not in (408, 429):
                    raise self._explain(exc, what, repo, kind) from None
                files = self._go_offline(repo, kind, revision, exc)
            except Exception as exc:  # the HTTP client's connection errors differ between its versions
                files = self._go_offline(repo, kind, revision, exc)
            else:
                files = [s.rfilename for s in info.siblings or []]
        self._listings[key] = files
        return files

    def _go_offline(self, repo: str, kind: str, revision: str, exc: Exception) -> list[str] | None:
        """The hub did not answer: from now on only the cache (no more waits on it in this run)."""
        self.failure = exc
        self.offline = True
        return self._cached_listing(repo, kind, revision)

    def _repo_folder(self, repo: str, kind: str) -> Path:
        return self.cache_dir / f"{kind}s--{repo.replace('/', '--')}"

    def _snapshot(self, repo: str, kind: str, revision: str) -> Path | None:
        ref = self._repo_folder(repo, kind) / "refs" / revision
        try:
            commit = ref.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        folder = self._repo_folder(repo, kind) / "snapshots" / commit
        return folder if folder.is_dir() else None

    def _cached_listing(self, repo: str, kind: str, revision: str) -> list[str] | None:
        folder = self._snapshot(repo, kind, revision)
        if folder is None:
            return None
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())

    def download(self, repo: str, kind: str, revision: str, filename: str, what: str) -> Path:
        """One file through the cache (online: checked against the hub; offline: the cached copy)."""
        if self.offline:
            folder = self._snapshot(repo, kind, revision)
            if folder is not None and (folder / filename).is_file():
                return folder / filename
            raise self.unreachable(what, self.failure)
        from huggingface_hub import hf_hub_download

        try:
            path = hf_hub_download(
                repo,
                filename,
                repo_type=kind,
                revision=revision,
                cache_dir=str(self.cache_dir),
                endpoint=self.endpoint,
                token=self.token,
            )
        except Exception as exc:  # classified below; huggingface_hub's errors carry no token
            raise self._explain(exc, what, repo, kind) from None
        return Path(path)

    # -- what fmb asks for ----------------------------------------------------------------

    def tokenizer(self, model_id: str, what: str) -> Path:
        """The ``tokenizer.json`` of a hub model, fetched into (or read from) the cache."""
        files = self.listing(model_id, "model", "main", what)  # online: is the hub there, does the repo exist?
        if files is None or (self.offline and "tokenizer.json" not in files):
            raise self.unreachable(what, self.failure)
        if "tokenizer.json" not in files:
            raise PrepareError(
                f"{what}: the model {model_id} on {self.where} has no tokenizer.json, the file fmb counts tokens with.",
                hint="Point datasets.tokenizer at a tokenizer.json, or remove it to count tokens by FMBench's rule.",
            )
        return self.download(model_id, "model", "main", "tokenizer.json", what)

    def dataset(self, entry: str) -> tuple[list[dict[str, Any]], str]:
        """The records of an ``hf:`` entry and a note saying where they came from."""
        ref = DatasetRef.parse(entry)
        what = f"source_data_files: {entry!r}"
        splits = [ref.split] if ref.split else list(SPLITS_WHEN_NONE_NAMED)
        looked: list[str] = []
        uncached = False
        for revision in ("main", CONVERTED):
            files = self.listing(ref.repo, "dataset", revision, what)
            if files is None:
                uncached = uncached or self.offline
                continue
            looked.append(revision)
            for split in splits:
                chosen = split_files(files, ref.subset, split, converted=revision == CONVERTED)
                if chosen:
                    records: list[dict[str, Any]] = []
                    for name in chosen:
                        records.extend(read_data_file(self.download(ref.repo, "dataset", revision, name, what), name))
                    source = "the Hugging Face cache" if self.offline else self.where
                    note = f"{entry}: {len(records)} records from {source}, {ref.repo}@{revision}: {', '.join(chosen)}"
                    self.notes.append(note)
                    return records, note
        if uncached:
            raise self.unreachable(what, self.failure)
        wanted = f"split {ref.split!r}" if ref.split else f"a split ({', '.join(SPLITS_WHEN_NONE_NAMED)})"
        where = f"in the Hugging Face cache ({self.cache_dir})" if self.offline else f"on {self.where}"
        raise PrepareError(
            f"{what}: the dataset {ref.repo} {where} has no files for subset {ref.subset!r}, {wanted} "
            f"(looked at {' and '.join(looked) or 'no branch'}).",
            hint="Check the subset and split names on the dataset's page; fmb reads Parquet, JSONL and JSON files "
            "laid out as SUBSET/SPLIT-*.parquet, data/SPLIT-*.parquet or the hub's refs/convert/parquet branch.",
        )


def _is_local_miss(exc: Exception) -> bool:
    from huggingface_hub.errors import LocalEntryNotFoundError

    return isinstance(exc, LocalEntryNotFoundError)


def _short(exc: Exception | None) -> str:
    if exc is None:
        return "no answer"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


@dataclass(frozen=True)
class DatasetRef:
    repo: str
    subset: str
    split: str | None

    @classmethod
    def parse(cls, entry: str) -> DatasetRef:
        parts = [p for p in entry.removeprefix("hf:").split("/") if p]
        if len(parts) < 2 or len(parts) > 4 or not HUB_ID.fullmatch("/".join(parts[:2])):
            raise PrepareError(
                f"source_data_files: {entry!r} is not a Hugging Face dataset as FMBench writes one.",
                hint="Write hf:ORG/NAME/SUBSET/SPLIT (SUBSET is default for a dataset without subsets), "
                "e.g. hf:THUDM/LongBench/2wikimqa_e/test.",
            )
        return cls("/".join(parts[:2]), parts[2] if len(parts) > 2 else "default", parts[3] if len(parts) > 3 else None)


def _layout(prefixes: list[str], split: str, extensions: tuple[str, ...]) -> list[re.Pattern[str]]:
    s, ext = re.escape(split), "|".join(extensions)
    out = []
    for prefix in prefixes:
        p = re.escape(prefix)
        out.append(re.compile(rf"{p}{s}-[^/]*\.({ext})"))
        out.append(re.compile(rf"{p}{s}\.({ext})"))
        out.append(re.compile(rf"{p}{s}/[^/]*\.({ext})"))
    return out


def split_files(files: list[str], subset: str, split: str, *, converted: bool) -> list[str]:
    """The files of one split among a repository's files, by the layouts in the module docstring."""
    if converted:
        s, p = re.escape(split), re.escape(subset)
        layouts = [re.compile(rf"{p}/{s}/[^/]*\.parquet"), re.compile(rf"{p}/partial-{s}/[^/]*\.parquet")]
    else:
        layouts = _layout([f"{subset}/"], split, EXTENSIONS)
        if subset == "default":
            layouts += _layout(["data/", ""], split, EXTENSIONS)
    for pattern in layouts:
        found = sorted(f for f in files if pattern.fullmatch(f))
        if found:
            return found
    return []


def _jsonable(value: Any) -> Any:
    """Parquet values as JSON can hold them (dates as ISO text, bytes as UTF-8 text where they are)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def read_data_file(path: Path, name: str) -> list[dict[str, Any]]:
    """The records of one downloaded data file (Parquet, JSONL, or a JSON array or JSONL as .json)."""
    from fmb.prepare.sources import read_jsonl

    if name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except (pa.ArrowException, OSError) as exc:
            raise PrepareError(f"{name} ({path}) is not a readable Parquet file: {exc}") from None
        return [_jsonable(r) for r in rows]
    if name.endswith(".json"):
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.lstrip().startswith("["):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise PrepareError(f"{name} ({path}): not JSON ({exc.msg} at line {exc.lineno}).") from None
            if not all(isinstance(r, dict) for r in data):
                raise PrepareError(f"{name} ({path}): a JSON array of objects was expected.")
            return list(data)
    return read_jsonl(path)


@dataclass(frozen=True)
class HubModel:
    """A tokenizer named by a hub model id (``hf_tokenizer_model_id``), fetched when it is needed."""

    model_id: str
    hub: Hub = field(compare=False)
