"""Load an FMBench-format config: fill placeholders, parse YAML, validate, resolve back ends."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from fmb.config.backends import resolve_backend
from fmb.config.checks import check_config, check_experiment
from fmb.config.document import TooDeep, parse, problems
from fmb.config.placeholders import fill, local_defaults
from fmb.config.schema import Experiment, FmbenchConfig
from fmb.config.steps import enabled_steps
from fmb.errors import ConfigError
from fmb.paths import BUNDLED_PRICING
from fmb.redact import (
    Redactor,
    assignment_secrets,
    header_secrets,
    is_secret_key,
    redact_mapping,
    strings,
    url_secrets,
)
from fmb.storage import copy_read_bucket, fetch_config, is_remote, is_s3, shown_url

MAX_ERRORS_SHOWN = 6


@dataclass
class ResolvedExperiment:
    """An experiment with everything fmb derives from it: back end, endpoint, parameters."""

    index: int
    spec: Experiment
    backend: str
    stream: bool
    # Where `stream` came from: a key path, or FMBench's default.
    stream_source: str
    endpoint: str | None
    parameters: dict[str, Any]
    instance_count: int
    # A load level of an open-loop or trace experiment (see fmb.collector.plan.load_levels): the
    # config's experiment name, and the level's rate (requests/s) or trace speed-up.
    config_name: str | None = None
    level: float | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def base_name(self) -> str:
        """The experiment's name in the config (a load level's experiment is named ``<base>@<level>``)."""
        return self.config_name or self.spec.name

    @property
    def key(self) -> str:
        return f"experiments[{self.index}]"


@dataclass
class LoadedConfig:
    path: Path
    text: str
    config: FmbenchConfig
    assignments: dict[str, str]
    experiments: list[ResolvedExperiment]
    read_root: Path
    pricing_path: Path | None
    warnings: list[str] = field(default_factory=list)
    # Where the config came from when it was given as s3:// or https:// (``path`` is its cached copy).
    source: str | None = None
    # FMBench's hf_token.txt when read from the read bucket: kept in memory, never written.
    read_bucket_token: tuple[str, str] | None = None

    @property
    def shown_path(self) -> str:
        """The config as the user named it: its URL, or its path."""
        return self.source or str(self.path)

    @property
    def name(self) -> str:
        return self.config.general.name

    def _secrets(self) -> tuple[list[str], list[str]]:
        """(credentials, words): what :class:`fmb.redact.Redactor` masks; the rules are in fmb.redact."""
        credentials: list[str] = []
        for exp in self.experiments:
            for headers in (exp.spec.headers, exp.spec.inference_spec.headers):
                credentials.extend(header_secrets(headers))
            if exp.spec.api_key_env and os.environ.get(exp.spec.api_key_env):
                credentials.append(os.environ[exp.spec.api_key_env])
            # Container env values under secret-looking names (API_TOKEN, ...) go into the containers only.
            credentials.extend(str(v) for k, v in exp.spec.env.items() if v not in (None, "") and is_secret_key(str(k)))
        token = self.hf_token()
        if token:
            credentials.append(token[0])
        from_assignments, words = assignment_secrets(self.assignments, credentials)
        credentials.extend(from_assignments)
        dump = self.config.model_dump(mode="json", by_alias=True, exclude_none=True)
        for text in [*strings(dump), *self.assignments.values(), *(e.endpoint or "" for e in self.experiments)]:
            userinfo, users = url_secrets(text)
            credentials.extend(userinfo)
            words.extend(users)
        return credentials, words

    def hf_token_file(self) -> Path:
        """Where FMBench keeps the Hugging Face token: hf_token.txt in the config's scripts folder."""
        return self.read_root / (self.config.s3_read_data.scripts_prefix or "scripts") / "hf_token.txt"

    def hf_token(self) -> tuple[str, str] | None:
        """The Hugging Face token and where it came from (hf_token.txt, else $HF_TOKEN or
        $HUGGING_FACE_HUB_TOKEN), or None."""
        if self.read_bucket_token is not None:
            return self.read_bucket_token
        path = self.hf_token_file()
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            text = ""
        if text:
            return text, str(path)
        for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):  # Hugging Face's own names for it
            if os.environ.get(variable, "").strip():
                return os.environ[variable].strip(), f"${variable}"
        return None

    def redactor(self) -> Redactor:
        """Masks this config's secrets in text fmb writes or prints (never in what it sends)."""
        return Redactor(*self._secrets())

    def redacted(self) -> dict[str, Any]:
        """The config as plain data with secrets masked (see :func:`fmb.redact.redact_mapping`)."""
        dump = self.config.model_dump(mode="json", by_alias=True, exclude_none=True)
        return redact_mapping(dump, self.redactor())

    @property
    def config_hash(self) -> str:
        canonical = json.dumps(self.redacted(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def experiment(self, name: str) -> ResolvedExperiment:
        for exp in self.experiments:
            if exp.name == name:
                return exp
        raise KeyError(name)


def _key_path(loc: tuple[Any, ...], data: Any) -> str:
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            if isinstance(node, list) and item < len(node):
                node = node[item]
                if isinstance(node, dict) and parts[:1] == ["experiments"] and len(parts) == 2 and "name" in node:
                    parts.append(f" ({node['name']})")
            else:
                node = None
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def _validation_message(path: Path, err: ValidationError, data: Any) -> ConfigError:
    lines = []
    for e in err.errors()[:MAX_ERRORS_SHOWN]:
        loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith("function-")))
        key = _key_path(loc, data) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            lines.append(f"{key}: required key is missing")
        else:
            shown = e.get("input")
            text = json.dumps(shown, default=str) if not isinstance(shown, dict) else "a mapping"
            if "headers" in loc:
                text = "a value not shown: header values are secret"
            if len(text) > 80:
                text = text[:77] + "..."
            lines.append(f"{key}: {msg} (got {text})")
    more = len(err.errors()) - MAX_ERRORS_SHOWN
    if more > 0:
        lines.append(f"... and {more} more")
    return ConfigError(
        str(path),
        "the config does not match FMBench's format:\n  " + "\n  ".join(lines),
        hint="Fix the keys above; `fmb config check CONFIG` re-checks the file.",
    )


def _parse_yaml(path: Path, text: str) -> Any:
    try:
        return parse(text)
    except TooDeep:
        raise ConfigError(str(path), "the YAML nests lists or mappings too deeply to be read.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context_mark", None)
        if context is not None and (mark is None or context.line != mark.line):
            problem += f"; the value that is not closed starts on line {context.line + 1}"
        raise ConfigError(
            str(path),
            f"{where}this is not valid YAML ({problem}).",
            hint="Check the indentation and quoting around that line.",
        ) from None


def _check_values(path: Path, data: Any) -> None:
    """Refuse values that JSON cannot carry (dates, binary, sets, ...), each with its key path."""
    found = list(itertools.islice(problems(data), MAX_ERRORS_SHOWN))
    if found:
        lines = [f"{_key_path(p.loc, data) or '(top level)'}: {p.message}" for p in found]
        raise ConfigError(
            str(path),
            "the config holds values fmb cannot use:\n  " + "\n  ".join(lines),
            hint="Fix the keys above; `fmb config check CONFIG` re-checks the file.",
        )


def _collect_ignored(model: BaseModel, prefix: str, out: list[str]) -> None:
    for key in model.model_extra or {}:
        out.append(f"{prefix}{key}")
    for name, value in model:
        child = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            _collect_ignored(value, child + ".", out)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    _collect_ignored(item, f"{child}[{i}].", out)


def _resolve_path(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p)


def _read_root(path: Path, cfg: FmbenchConfig, assignments: dict[str, str]) -> Path:
    local = cfg.s3_read_data.local_file_system_path
    if local:
        return _resolve_path(path.parent, local)
    if "read_tmpdir" in assignments:
        return _resolve_path(Path.cwd(), assignments["read_tmpdir"])
    return path.parent


def _reads_bucket(cfg: FmbenchConfig, source: str | None, assignments: dict[str, str]) -> bool:
    """Whether s3_read_data is read from the read bucket.

    `s3_or_local_file_system` says so; without it, a config fetched from S3 reads its bucket
    (FMBench read from S3 before it had a local mode) unless the bucket is fmb's stand-in for
    `{read_bucket}` (no -A read_bucket=... given), and a local config reads local folders.
    """
    data = cfg.s3_read_data
    if data.s3_or_local_file_system is not None:
        return data.s3_or_local_file_system == "s3"
    stand_in = "read_bucket" not in assignments and not os.environ.get("FMB_READ_BUCKET")
    return bool(is_s3(source) and data.read_bucket and not (stand_in and data.read_bucket == "fmb-local-read"))


def _copy_read_bucket(
    path: Path, cfg: FmbenchConfig, assignments: dict[str, str], warnings: list[str]
) -> tuple[Path, tuple[str, str] | None]:
    """The read bucket's files that s3_read_data names, copied into fmb's cache: (root, hf token)."""
    data = cfg.s3_read_data
    stand_in = "read_bucket" not in assignments and not os.environ.get("FMB_READ_BUCKET")
    if not data.read_bucket or (stand_in and data.read_bucket == "fmb-local-read"):
        raise ConfigError(
            str(path),
            "s3_read_data is read from S3, but no read bucket is named.",
            key="s3_read_data.read_bucket",
            hint="Give it: -A read_bucket=BUCKET (or set FMB_READ_BUCKET), or set s3_or_local_file_system: local.",
        )
    scripts = (data.scripts_prefix or "scripts").strip("/")
    token_key = f"{scripts}/hf_token.txt"
    from fmb.prepare.sources import hub_copies

    files = [f"{data.source_data_prefix}/{name}" for name in data.source_data_files if ":" not in name]
    for name in data.source_data_files:
        if name.startswith("hf:"):  # a local copy of a hub dataset, under any name fmb looks for
            files.extend(f"{data.source_data_prefix}/{copy}" for copy in hub_copies(name))
    files += [f"{scripts}/{name}" for name in data.script_files if f"{scripts}/{name}" != token_key]
    configs = (data.configs_prefix or "configs").strip("/")
    files += [f"{configs}/{name}" for name in data.config_files]
    files.append(f"{configs}/{cfg.pricing}")
    folders = [data.prompt_template_dir]
    if data.tokenizer_prefix:
        folders.append(data.tokenizer_prefix)
    copied = copy_read_bucket(
        data.read_bucket, files=files, folders=folders, token_key=token_key, assignments=assignments
    )
    named = {f"{data.source_data_prefix}/{n}" for n in data.source_data_files} | {
        f"{scripts}/{n}" for n in data.script_files
    }
    absent = [key for key in copied.missing if key in named and key != token_key]
    if absent:
        warnings.append(f"s3_read_data: not in the read bucket s3://{data.read_bucket}: " + ", ".join(sorted(absent)))
    token = (copied.hf_token, f"s3://{data.read_bucket}/{token_key}") if copied.hf_token else None
    return copied.root, token


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system, ...
        return False


def _stream(cfg: FmbenchConfig, exp: Experiment, parameter_set: str | None) -> tuple[bool, str]:
    """Whether an experiment streams, and the key that says so.

    fmb's own `stream` key wins, then FMBench's `inference_spec.stream`, then a boolean
    `stream` in the experiment's inference parameter set (FMBench's Ollama configs put it
    there); FMBench's default is not to stream.
    """
    if exp.stream is not None:
        return exp.stream, "stream"
    if exp.inference_spec.stream is not None:
        return exp.inference_spec.stream, "inference_spec.stream"
    in_parameters = cfg.inference_parameters.get(parameter_set, {}).get("stream") if parameter_set else None
    if isinstance(in_parameters, bool):
        return in_parameters, f"inference_parameters.{parameter_set}.stream"
    return False, "default (FMBench: not streamed)"


def _pricing_path(path: Path, cfg: FmbenchConfig, read_root: Path, warnings: list[str]) -> Path | None:
    # Next to the config, or up its folders as in FMBench's configs/<model>/<size>/ layout.
    candidates = [_resolve_path(folder, cfg.pricing) for folder in [path.parent, *path.parent.parents][:4]]
    if cfg.s3_read_data.configs_prefix:
        candidates.append(read_root / cfg.s3_read_data.configs_prefix / cfg.pricing)
    candidates.append(read_root / cfg.pricing)
    for candidate in candidates:
        if _is_file(candidate):
            return candidate
    if BUNDLED_PRICING.is_file():
        warnings.append(
            f"pricing: {cfg.pricing!r} was not found next to the config or in the read folder; "
            f"using fmb's {BUNDLED_PRICING}"
        )
        return BUNDLED_PRICING
    warnings.append(f"pricing: {cfg.pricing!r} was not found; costs will be flagged as unpriced")
    return None


def _resolve_experiment(path: Path, cfg: FmbenchConfig, index: int, exp: Experiment) -> ResolvedExperiment:
    key = f"experiments[{index}] ({exp.name})"
    check_experiment(path, cfg, key, exp)
    res = resolve_backend(exp)
    if res.backend is None:
        raise ConfigError(str(path), res.problem or "no back end", key=f"{key}.{res.key}")
    pset = exp.inference_spec.parameter_set
    if pset is not None and pset not in cfg.inference_parameters:
        have = ", ".join(sorted(cfg.inference_parameters)) or "none"
        raise ConfigError(
            str(path),
            f"parameter set {pset!r} is not a section of inference_parameters (sections: {have}).",
            key=f"{key}.inference_spec.parameter_set",
        )
    parameters = dict(cfg.inference_parameters.get(pset, {})) if pset else {}
    endpoint = exp.endpoint_url or exp.ep_name
    has_url = bool(endpoint and endpoint.startswith(("http://", "https://")))
    if res.backend.startswith("openai") and not has_url and not (exp.local and exp.deploy):
        raise ConfigError(
            str(path),
            f"back end {res.backend} needs the server's URL, e.g. endpoint_url: http://localhost:8000/v1 "
            f"(got ep_name {exp.ep_name!r}).",
            key=f"{key}.endpoint_url",
        )
    stream, stream_source = _stream(cfg, exp, pset)
    return ResolvedExperiment(
        index=index,
        spec=exp,
        backend=res.backend,
        stream=stream,
        stream_source=stream_source,
        endpoint=endpoint,
        parameters=parameters,
        # FMBench's Neuron configs give the count as ec2.instance_count (neuron_deploy.py reads it there).
        instance_count=exp.instance_count or exp.ec2.instance_count or 1,
    )


def load_config(
    path: str | Path,
    assignments: dict[str, str] | None = None,
    results_dir: str | Path = "results",
) -> LoadedConfig:
    """Read, fill, parse and validate a config; raise :class:`ConfigError` with a clear message.

    ``path`` may be an ``s3://`` or ``https://`` URL: the config is fetched into fmb's cache first.
    """
    assignments = dict(assignments or {})
    if isinstance(path, str) and is_remote(path):
        cached = fetch_config(path, assignments)
        try:
            return _load(cached, assignments, results_dir, path)
        except ConfigError as exc:  # named by its URL (without a password), not by the cached copy
            shown = shown_url(path)
            exc.message = exc.message.replace(str(cached), shown, 1)
            exc.args = (exc.message,)
            exc.path = shown
            raise
    return _load(Path(path), assignments, results_dir, None)


def _load(path: Path, assignments: dict[str, str], results_dir: str | Path, source: str | None) -> LoadedConfig:
    if not _is_file(path):
        raise ConfigError(str(path), "no such file.", hint="Give the path of an FMBench-format YAML config.")
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"cannot be read ({exc}).") from None

    values = local_defaults(path.resolve(), Path(results_dir).resolve()) | assignments
    text, unfilled = fill(raw, values)
    if unfilled:
        names = sorted({u.name for u in unfilled})
        where = ", ".join(f"{{{u.name}}} (line {u.line})" for u in unfilled[:8])
        raise ConfigError(
            str(path),
            f"placeholders without a value: {where}.",
            hint="Give each one with -A, e.g. " + " ".join(f"-A {n}=VALUE" for n in names) + ".",
        )

    data = _parse_yaml(path, text)
    if not isinstance(data, dict):
        raise ConfigError(str(path), "the file is not a YAML mapping of sections (general, experiments, ...).")
    _check_values(path, data)
    if "experiments" not in data:
        raise ConfigError(
            str(path),
            "the experiments section is missing; there is nothing to benchmark.",
            key="experiments",
            hint="Add an experiments: list (see configs/ for examples).",
        )
    try:
        cfg = FmbenchConfig.model_validate(data)
    except ValidationError as err:
        raise _validation_message(path, err, data) from None

    names = [e.name for e in cfg.experiments]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(
            str(path), f"experiment names must be unique; repeated: {', '.join(dupes)}.", key="experiments"
        )

    check_config(path, cfg)
    warnings: list[str] = []
    ignored: list[str] = []
    _collect_ignored(cfg, "", ignored)
    if ignored:
        warnings.append("keys fmb does not use (kept, ignored): " + ", ".join(ignored))
    experiments = [_resolve_experiment(path, cfg, i, e) for i, e in enumerate(cfg.experiments)]
    token: tuple[str, str] | None = None
    if _reads_bucket(cfg, source, assignments):
        read_root, token = _copy_read_bucket(path, cfg, assignments, warnings)
    else:
        read_root = _read_root(path, cfg, assignments)
    pricing_path = _pricing_path(path, cfg, read_root, warnings)

    _, step_notes = enabled_steps(cfg.run_steps)
    warnings.extend(step_notes)
    doi = cfg.metrics.dataset_of_interest
    if doi and not any(doi in pf for e in cfg.experiments for pf in e.payload_files):
        warnings.append(
            f"metrics.dataset_of_interest {doi!r} matches no experiment's payload file; "
            "the best-option table will be empty"
        )
    return LoadedConfig(
        path=path,
        text=text,
        config=cfg,
        assignments=assignments,
        experiments=experiments,
        read_root=read_root,
        pricing_path=pricing_path,
        warnings=warnings,
        source=source,
        read_bucket_token=token,
    )
