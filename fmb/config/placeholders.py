"""Fill FMBench's `{name}` placeholders in the raw text of a config, before YAML parses it.

FMBench formats the whole config text with Python's ``str.format`` before parsing it,
so `{region}` in ``region: {region}`` becomes ``region: us-east-1``. fmb does the same,
with two differences that make a missing value a clear error instead of a ``KeyError``
or, worse, a YAML mapping: every placeholder left without a value is reported with its
line number, and the names that payload file patterns use (`{lang}`, `{min}`, `{max}`)
and local server commands use (`{port}`) are kept for later.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from fmb.errors import FmbError

PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
# `{{name}}` stands for a literal `{name}` (other braces, such as YAML's `{a: {b: 1}}`, are left alone).
ESCAPED = re.compile(r"\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}")
# Filled later: per filter when payload files are named, and with a free port when a
# local server command is started.
LATE_PLACEHOLDERS = frozenset({"lang", "min", "max", "port"})


@dataclass(frozen=True)
class Unfilled:
    name: str
    line: int


def local_defaults(config_path: Path, results_dir: Path) -> dict[str, str]:
    """Values for FMBench's built-in placeholders when no AWS session is used.

    FMBench asks AWS (STS, the instance metadata) for these; fmb never calls AWS to
    read a config, so they come from the environment or from clearly local defaults.
    """
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return {
        "region": region,
        "role_arn": os.environ.get("FMB_ROLE_ARN", "arn:aws:iam::000000000000:role/fmb-local-no-role"),
        "write_bucket": os.environ.get("FMB_WRITE_BUCKET", "fmb-local-write"),
        "read_bucket": os.environ.get("FMB_READ_BUCKET", "fmb-local-read"),
        "write_tmpdir": str(results_dir),
        "read_tmpdir": str(config_path.parent),
        "results_dir": str(results_dir),
    }


def _strip_comment(line: str) -> str:
    """The part of a YAML line before a comment (good enough to look for placeholders)."""
    in_single = in_double = False
    for i, ch in enumerate(line):
        if ch == "'" and not in_double:
            in_single = not in_single
        elif ch == '"' and not in_single:
            in_double = not in_double
        elif ch == "#" and not in_single and not in_double and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def fill(text: str, values: dict[str, str]) -> tuple[str, list[Unfilled]]:
    """Replace `{name}` by ``values[name]``; `{{name}}` stands for a literal `{name}`.

    Returns the filled text and the placeholders (outside comments) that had no value.
    """
    unfilled: list[Unfilled] = []
    out_lines = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        code = _strip_comment(line)
        comment = line[len(code) :]

        def replace(match: re.Match[str], number: int = number) -> str:
            name = match.group(1)
            if name in values:
                return str(values[name])
            if name not in LATE_PLACEHOLDERS:
                unfilled.append(Unfilled(name, number))
            return match.group(0)

        code = PLACEHOLDER.sub(replace, code)
        code = ESCAPED.sub(r"{\1}", code)
        out_lines.append(code + comment)
    return "".join(out_lines), unfilled


def parse_assignments(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Parse ``-A key=value`` options (split at the first ``=``, whitespace stripped)."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise FmbError(
                f"-A {pair!r} is not of the form key=value.",
                hint="Example: -A region=us-west-2 -A model_id=meta-llama/Llama-3.1-8B-Instruct",
            )
        values[key] = value.strip()
    return values
