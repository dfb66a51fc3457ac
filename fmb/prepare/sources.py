"""Reading source datasets: LongBench-format or plain JSONL files, ``hf:`` hub datasets, and prompt templates."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmb.errors import PrepareError
from fmb.paths import BUNDLED_PROMPT_TEMPLATES

if TYPE_CHECKING:
    from fmb.prepare.hub import Hub

SYNTHETIC_PREFIX = "synthetic:"
SYNTHETIC_KINDS = ("longbench", "exact-lengths")


@dataclass
class SourceRecord:
    source_file: str
    record_id: str
    fields: dict[str, Any]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file; a broken line is an error naming the file and line."""
    records = []
    try:
        lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines: JSON may hold U+2028
    except OSError as exc:
        raise PrepareError(f"cannot open {path}: {exc.strerror}.") from None
    except UnicodeDecodeError as exc:
        raise PrepareError(f"{path} is not UTF-8 text (byte {exc.start}): a JSONL file must be UTF-8.") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PrepareError(
                f"{path} line {number}: not a JSON object ({exc.msg} at column {exc.colno}).",
                hint="Each line of a JSONL file must be one JSON object.",
            ) from None
        except (ValueError, RecursionError) as exc:  # a number of thousands of digits; nesting deeper than the stack
            reason = "it nests too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
            raise PrepareError(f"{path} line {number}: cannot be read ({reason}).") from None
        if not isinstance(record, dict):
            raise PrepareError(f"{path} line {number}: expected a JSON object, got {type(record).__name__}.")
        if "\\u" in line and _lone_surrogate(record):
            raise PrepareError(
                f"{path} line {number}: a \\uD800-\\uDFFF escape stands alone, so the text is not Unicode "
                "and cannot be sent.",
                hint="Escape a character outside the Basic Multilingual Plane as a surrogate pair, or write it as is.",
            )
        records.append(record)
    return records


def _lone_surrogate(record: dict[str, Any]) -> bool:
    """Whether a key or text in ``record`` holds half of a surrogate pair (valid JSON, invalid text)."""
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def hub_copies(name: str) -> list[str]:
    """File names a local copy of a Hugging Face dataset (`hf:org/dataset/subset/split`) may have."""
    parts = [p for p in name.removeprefix("hf:").split("/") if p]
    dataset = parts[1] if len(parts) > 1 else parts[0]
    subset = parts[2] if len(parts) > 2 else "default"
    split = parts[3] if len(parts) > 3 else "train"
    return [
        f"{subset}.jsonl",
        f"{subset}_{split}.jsonl",
        f"{dataset}_{subset}_{split}.jsonl",
        "_".join(parts) + ".jsonl",
    ]


def read_source_file(root: Path, prefix: str, name: str, keys: list[str], hub: Hub | None = None) -> list[SourceRecord]:
    """The records of one ``source_data_files`` entry, checked for the template keys.

    An ``hf:`` entry is read from a local copy in the source data folder when there is one
    (e.g. ``2wikimqa_e.jsonl`` for ``hf:THUDM/LongBench/2wikimqa_e/test``), else from the
    Hugging Face hub through its cache (see :mod:`fmb.prepare.hub`).
    """
    if name.startswith("hf:"):
        copies = [root / prefix / c for c in hub_copies(name)]
        found = next((c for c in copies if c.is_file()), None)
        if found is None:
            from fmb.prepare.hub import Hub

            try:
                rows, _ = (hub or Hub.from_env()).dataset(name)
            except PrepareError as exc:
                raise PrepareError(
                    f"{exc.message} No local copy either ({', '.join(c.name for c in copies)} in {root / prefix}/).",
                    hint=(exc.hint + " " if exc.hint else "")
                    + "Or save the split there as JSONL under one of those names, or use a built-in dataset: "
                    "synthetic:longbench or synthetic:exact-lengths.",
                ) from None
            return _checked(rows, name, f"{name} record", keys)
        name = found.name
    path = root / prefix / name
    if not path.is_file():
        raise PrepareError(
            f"source data file {path} does not exist.",
            hint=f"fmb reads s3_read_data.source_data_files from {root / prefix}/ (set the folder with "
            "s3_read_data.local_file_system_path or -A read_tmpdir=DIR), or use a built-in dataset: "
            "synthetic:longbench or synthetic:exact-lengths.",
        )
    return _checked(read_jsonl(path), name, f"{path} line", keys)


def _checked(rows: list[dict[str, Any]], name: str, where: str, keys: list[str]) -> list[SourceRecord]:
    """``rows`` as source records; ``where`` names a row in errors ("FILE line", "ENTRY record")."""
    out = []
    for i, record in enumerate(rows):
        missing = [k for k in keys if k not in record]
        if missing:
            raise PrepareError(
                f"{where} {i + 1}: the record has no "
                f"{', '.join(missing)} (datasets.prompt_template_keys asks for {', '.join(keys)}).",
                hint=f"The record's keys are: {', '.join(sorted(record))}.",
            )
        out.append(SourceRecord(name, str(record.get("_id", f"{name}:{i + 1}")), record))
    return out


class PromptTemplate:
    """A prompt template with `{key}` placeholders, filled only for the configured keys.

    Other braces in the template (JSON examples, code) are left alone, unlike ``str.format``.
    """

    def __init__(self, text: str, keys: list[str], origin: str) -> None:
        self.text = text.strip()
        self.keys = keys
        self.origin = origin
        self._pattern = re.compile("|".join(re.escape("{" + k + "}") for k in keys)) if keys else None

    @classmethod
    def default(cls, keys: list[str]) -> PromptTemplate:
        return cls("\n\n".join("{" + k + "}" for k in keys), keys, "built-in (the keys joined by blank lines)")

    def render(self, fields: dict[str, Any]) -> str:
        if self._pattern is None:
            return self.text
        return self._pattern.sub(lambda m: str(fields.get(m.group(0)[1:-1], "")), self.text)


def load_template(root: Path, directory: str, file: str | None, keys: list[str]) -> PromptTemplate:
    """The template from the read folder, else fmb's bundled one of the same name."""
    if file is None:
        return PromptTemplate.default(keys)
    for candidate in (root / directory / file, BUNDLED_PROMPT_TEMPLATES / file):
        if candidate.is_file():
            try:
                text = candidate.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise PrepareError(f"prompt template {candidate} is not UTF-8 text.") from None
            absent = [k for k in keys if "{" + k + "}" not in text]
            if absent:
                raise PrepareError(
                    f"prompt template {candidate} has no placeholder for {', '.join('{' + k + '}' for k in absent)} "
                    "(datasets.prompt_template_keys).",
                )
            return PromptTemplate(text, keys, str(candidate))
    raise PrepareError(
        f"prompt template {file!r} was found neither in {root / directory}/ nor among fmb's templates "
        f"in {BUNDLED_PROMPT_TEMPLATES}/.",
        hint="Set s3_read_data.prompt_template_file to an existing file (or remove it to join the "
        "template keys with blank lines).",
    )
