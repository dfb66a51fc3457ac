"""Checks on a validated config that span several keys or read the environment.

Each refusal is a :class:`ConfigError` that names the key path, the value and what is
allowed, raised when the config loads, so `fmb config check` and `fmb collect` stop
before any request is sent.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from fmb.config import limits
from fmb.config.schema import Experiment, FmbenchConfig
from fmb.errors import ConfigError

_USERINFO = re.compile(r"(?<=://)[^/?#@]*@")


def shown_url(url: str) -> str:
    """The URL as it may be printed: user and password replaced by ``***``."""
    return _USERINFO.sub("***@", url)


def http_url_problem(url: str) -> str | None:
    """Why ``url`` is not an http(s) URL that a client can send to, or None."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return "it holds a space, a line break or a control character"
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"it cannot be parsed ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return "it must start with http:// or https://"
    host = parts.hostname
    if not host:
        return "it names no host"
    try:
        port = parts.port
    except ValueError as exc:
        return f"its port is not valid ({exc})"
    if port == 0:
        return "port 0 cannot be connected to"
    if parts.netloc.rpartition("@")[2].startswith("["):
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            return f"[{host}] is not an IPv6 address"
    else:
        try:
            host.encode("idna")
        except UnicodeError:
            return f"{host!r} is not a host name"
    return None


def _url(path: Path, key: str, url: str | None) -> None:
    if url is None:
        return
    problem = http_url_problem(url)
    if problem:
        raise ConfigError(
            str(path),
            f"{shown_url(url)!r} is not a valid http(s) URL: {problem}.",
            key=key,
            hint="Give the endpoint's base URL, e.g. http://localhost:8000/v1 or https://host.example.com/v1.",
        )


def check_experiment(path: Path, cfg: FmbenchConfig, key: str, exp: Experiment) -> None:
    """URLs, the request count of each cell, and the API key's value."""
    _url(path, f"{key}.endpoint_url", exp.endpoint_url)
    if exp.ep_name and "://" in exp.ep_name:  # FMBench's EC2 and EKS configs give the container's URL here
        _url(path, f"{key}.ep_name", exp.ep_name)
    if exp.local and exp.local.ready_url:
        _url(path, f"{key}.local.ready_url", exp.local.ready_url.replace("{port}", "8000"))

    rounds = cfg.datasets.min_iters_per_combination
    widest = max(exp.concurrency_levels)
    if widest * rounds > limits.REQUESTS_PER_CELL.value:
        raise ConfigError(
            str(path),
            f"concurrency {widest} x datasets.min_iters_per_combination {rounds} is {widest * rounds:,} requests "
            f"in each such cell, more than the limit of {limits.REQUESTS_PER_CELL.value:,}: "
            f"{limits.REQUESTS_PER_CELL.why}.",
            key=f"{key}.concurrency_levels",
            hint="Lower the concurrency or datasets.min_iters_per_combination.",
        )

    if exp.api_key_env:
        value = os.environ.get(exp.api_key_env)
        if value and any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            raise ConfigError(
                str(path),
                f"the environment variable {exp.api_key_env} holds a line break or a control character, "
                "so its value cannot go into an HTTP header (the value is not shown: it is secret).",
                key=f"{key}.api_key_env",
                hint=f"Set {exp.api_key_env} to the key alone, e.g. without a trailing newline.",
            )


def check_config(path: Path, cfg: FmbenchConfig) -> None:
    """Sizes of the built-in synthetic datasets, which are generated in memory."""
    synthetic = cfg.datasets.synthetic
    sources = cfg.s3_read_data.source_data_files
    limit = limits.SYNTHETIC_WORDS
    if "synthetic:longbench" in sources:
        words = synthetic.records * max(synthetic.max_context_words, synthetic.min_context_words)
        if words > limit.value:
            raise ConfigError(
                str(path),
                f"records {synthetic.records:,} x max_context_words {synthetic.max_context_words:,} is {words:,} "
                f"words, more than the limit of {limit.value:,}: {limit.why}.",
                key="datasets.synthetic",
                hint="Generate fewer or shorter records.",
            )
    if "synthetic:exact-lengths" in sources:
        tokens = synthetic.prompts_per_filter * sum(f.max_length_in_tokens for f in cfg.datasets.filters)
        if tokens > limit.value:
            raise ConfigError(
                str(path),
                f"prompts_per_filter {synthetic.prompts_per_filter:,} x the filters' max_length_in_tokens is up to "
                f"{tokens:,} words, more than the limit of {limit.value:,}: {limit.why}.",
                key="datasets.synthetic.prompts_per_filter",
                hint="Generate fewer prompts per filter, or narrow the filters.",
            )
