"""`fmb prepare`: source records -> filled prompts -> token filters -> payload JSONL files.

Payload files are FMBench's format, one JSON object a line: ``{"inputs": <prompt>}``
plus ``"ground_truth"`` and ``"question"`` when the config names those columns. The
prompts also go to the ``raw/prompts`` table for the warehouse.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fmb.collector.parquet_io import write_atomic
from fmb.collector.schemas import PROMPTS
from fmb.config import LoadedConfig
from fmb.config.schema import payload_file_problem
from fmb.errors import PrepareError
from fmb.paths import ResultsLayout
from fmb.prepare.hub import Hub, HubModel, looks_like_hub_id
from fmb.prepare.sources import (
    SYNTHETIC_KINDS,
    SYNTHETIC_PREFIX,
    PromptTemplate,
    SourceRecord,
    load_template,
    read_source_file,
)
from fmb.prepare.synthetic import exact_length_records, longbench_records
from fmb.prepare.tokens import TokenCounter, load_counter


def prompt_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def prompt_row(
    benchmark: str,
    payload_file: str,
    prompt: str,
    tokens: int,
    counter: str,
    *,
    source_file: str,
    record_id: str,
    language: str | None = None,
    filter_min: int | None = None,
    filter_max: int | None = None,
    prepared_at: datetime | None = None,
) -> dict[str, Any]:
    """A row of the raw/prompts table."""
    return {
        "benchmark": benchmark,
        "payload_file": payload_file,
        "prompt_id": prompt_id(prompt),
        "source_file": source_file,
        "record_id": record_id,
        "language": language,
        "prompt_tokens": tokens,
        "token_counter": counter,
        "prompt_chars": len(prompt),
        "filter_min_tokens": filter_min,
        "filter_max_tokens": filter_max,
        "prepared_at": prepared_at or datetime.now(UTC),
    }


@dataclass
class FilterResult:
    payload_file: str
    language: str | None
    min_tokens: int
    max_tokens: int
    prompts: int
    path: Path | None


@dataclass
class PrepareResult:
    records: int
    counter: str
    template: str
    filters: list[FilterResult]
    notes: list[str] = field(default_factory=list)
    prompts_table: Path | None = None

    @property
    def empty_filters(self) -> list[FilterResult]:
        return [f for f in self.filters if f.prompts == 0]


def tokenizer_candidates(loaded: LoadedConfig, hub: Hub | None = None) -> list[tuple[str, Path | HubModel]]:
    """Where a tokenizer may be, in order: datasets.tokenizer, tokenizer_prefix, hf_tokenizer_model_id
    (a local folder, else a Hugging Face hub model id)."""
    cfg = loaded.config
    out: list[tuple[str, Path | HubModel]] = []
    if cfg.datasets.tokenizer:
        p = Path(cfg.datasets.tokenizer).expanduser()
        out.append(("datasets.tokenizer", p if p.is_absolute() else loaded.path.parent / p))
    if cfg.s3_read_data.tokenizer_prefix:
        out.append(("s3_read_data.tokenizer_prefix", loaded.read_root / cfg.s3_read_data.tokenizer_prefix))
    for exp in cfg.experiments:
        model_id = exp.hf_tokenizer_model_id
        if model_id and hub is not None and looks_like_hub_id(model_id):
            if HubModel(model_id, hub) not in [w for _, w in out]:
                out.append(("hf_tokenizer_model_id", HubModel(model_id, hub)))
        elif model_id:
            out.append(("hf_tokenizer_model_id (a local folder)", Path(model_id).expanduser()))
    return out


def load_records(
    loaded: LoadedConfig, template: PromptTemplate, counter: TokenCounter, hub: Hub | None = None
) -> tuple[list[SourceRecord], list[str]]:
    cfg = loaded.config
    keys = cfg.datasets.prompt_template_keys
    records: list[SourceRecord] = []
    notes: list[str] = []
    if not cfg.s3_read_data.source_data_files:
        raise PrepareError(
            f"{loaded.path}: s3_read_data.source_data_files lists no dataset.",
            hint="List JSONL files, or a built-in dataset: synthetic:longbench or synthetic:exact-lengths.",
        )
    for name in cfg.s3_read_data.source_data_files:
        if name.startswith(SYNTHETIC_PREFIX):
            kind = name.removeprefix(SYNTHETIC_PREFIX)
            if kind == "longbench":
                rows = longbench_records(cfg.datasets.synthetic)
            elif kind == "exact-lengths":
                rows, more = exact_length_records(
                    cfg.datasets.synthetic, cfg.datasets.filters, keys, template.render, counter.count
                )
                notes.extend(more)
            else:
                raise PrepareError(
                    f"{loaded.path}: s3_read_data.source_data_files: {name!r} is not a built-in dataset; "
                    f"known: {', '.join(SYNTHETIC_PREFIX + k for k in SYNTHETIC_KINDS)}."
                )
            records.extend(SourceRecord(name, str(r["_id"]), r) for r in rows)
        else:
            records.extend(read_source_file(loaded.read_root, cfg.s3_read_data.source_data_prefix, name, keys, hub))
    return records, notes


def _payload_line(fields: dict[str, Any], prompt: str, gt_key: str | None, q_key: str | None) -> str:
    line: dict[str, Any] = {"inputs": prompt}
    if gt_key:
        line["ground_truth"] = fields.get(gt_key)
    if q_key:
        line["question"] = fields.get(q_key)
    return json.dumps(line, ensure_ascii=False)


def prepare(loaded: LoadedConfig, layout: ResultsLayout) -> PrepareResult:
    """Write one payload file per filter and the prompts table; report empty filters."""
    cfg = loaded.config
    if not cfg.datasets.filters:
        raise PrepareError(
            f"{loaded.path}: datasets.filters is empty, so no payload file would be written.",
            hint="Add filters with language, min_length_in_tokens, max_length_in_tokens and payload_file.",
        )
    hub = Hub.from_env(loaded.hf_token(), loaded.hf_token_file())
    counter, counter_note = load_counter(tokenizer_candidates(loaded, hub))
    keys = cfg.datasets.prompt_template_keys
    template = load_template(
        loaded.read_root, cfg.s3_read_data.prompt_template_dir, cfg.s3_read_data.prompt_template_file, keys
    )
    records, notes = load_records(loaded, template, counter, hub)
    notes.extend(hub.notes)
    prompts = [template.render(r.fields) for r in records]
    lengths = counter.count_many(prompts)

    out_dir = layout.payload_dir(loaded.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    gt_key, q_key = cfg.datasets.ground_truth_col_key, cfg.datasets.question_col_key
    rows: list[dict[str, Any]] = []
    results: list[FilterResult] = []
    for flt in cfg.datasets.filters:
        name = flt.file_name()
        chosen = [
            i
            for i, (rec, n) in enumerate(zip(records, lengths, strict=True))
            if flt.min_length_in_tokens <= n < flt.max_length_in_tokens
            and (flt.language is None or "language" not in rec.fields or rec.fields["language"] == flt.language)
        ]
        path = out_dir / name
        problem = payload_file_problem(name)  # refused when the config loaded; checked again where it is written
        if problem or path.parent != out_dir:
            raise PrepareError(
                f"{loaded.path}: datasets.filters: payload file {name!r} cannot be written: "
                f"{problem or 'it lies outside ' + str(out_dir)}."
            )
        if not chosen:
            path.unlink(missing_ok=True)  # never leave an older file that no longer matches
            results.append(
                FilterResult(name, flt.language, flt.min_length_in_tokens, flt.max_length_in_tokens, 0, None)
            )
            continue
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for i in chosen:
                fh.write(_payload_line(records[i].fields, prompts[i], gt_key, q_key) + "\n")
        tmp.replace(path)
        rows.extend(
            prompt_row(
                loaded.name,
                name,
                prompts[i],
                lengths[i],
                counter.name,
                source_file=records[i].source_file,
                record_id=records[i].record_id,
                language=records[i].fields.get("language"),
                filter_min=flt.min_length_in_tokens,
                filter_max=flt.max_length_in_tokens,
                prepared_at=now,
            )
            for i in chosen
        )
        results.append(
            FilterResult(name, flt.language, flt.min_length_in_tokens, flt.max_length_in_tokens, len(chosen), path)
        )
    table = None
    if rows:
        table = write_atomic(rows, PROMPTS, layout.prompts_dir(loaded.name) / "prompts.parquet")
    if lengths:
        spread = Counter(lengths)
        notes.insert(0, f"{len(records)} records, prompt lengths {min(spread)}..{max(spread)} tokens")
    return PrepareResult(len(records), counter_note, template.origin, results, notes, table)
