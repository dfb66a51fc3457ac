"""The accuracy step's settings: FMBench's model_eval_all_info.yml, found where FMBench looks.

A config names the file with ``model_evaluations: model_eval_all_info.yml``. fmb looks
for it next to the config and up its folders (FMBench's configs/<model>/<size>/ layout),
in the read folder (and its ``configs_prefix``), then uses its own copy. As FMBench does,
``{ground_truth}``, ``{question}`` and ``{method_name}`` are filled from the config's
``datasets.ground_truth_col_key``, ``question_col_key`` and the voting method, and any
other ``{placeholder}`` from ``-A``.

A judge is FMBench's entry (``model_id``, ``eval_prompt_template_dir``,
``eval_prompt_template_name``), called through Amazon Bedrock by default; with fmb's
keys on the entry it is any back end fmb can send to: ``endpoint_url`` and ``api``
(``openai-chat`` or ``openai-completions``) for an OpenAI-compatible server,
``backend: sagemaker`` with ``ep_name``, or ``experiment: NAME`` for the endpoint of one of
the config's experiments (such as the local llama.cpp server fmb deployed for it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fmb.config import LoadedConfig
from fmb.errors import ConfigError
from fmb.paths import BUNDLED_CONFIGS, BUNDLED_PROMPT_TEMPLATES

DEFAULT_FILE = "model_eval_all_info.yml"
EVAL_CRITERIA = "eval_criteria"


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, populate_by_name=True)


class Voting(_Section):
    method: str = "majority_vote"
    use_quantitative_metrics: bool = True


class EvalDirs(_Section):
    eval_prompts_dir: str = EVAL_CRITERIA
    eval_instructions_dir: str | None = None
    eval_instructions_files: list[str] = Field(default_factory=lambda: ["evaluation_instructions_majority_vote.txt"])


class EmbeddingsModel(_Section):
    model_id: str = "sentence-transformers/all-mpnet-base-v2"
    # fmb: where the model runs when not on this machine.
    endpoint_url: str | None = Field(None, description="fmb: an OpenAI-compatible /v1/embeddings server.")
    backend: Literal["local", "openai", "bedrock", "sagemaker"] | None = Field(
        None, description="fmb: local (default), openai (endpoint_url), bedrock (model_id) or sagemaker (ep_name)."
    )
    ep_name: str | None = Field(None, description="fmb: the SageMaker embeddings endpoint's name.")
    region: str | None = None
    api_key_env: str | None = Field(None, description="fmb: the variable holding the embeddings server's API key.")

    @property
    def resolved_backend(self) -> str:
        if self.backend:
            return self.backend
        if self.endpoint_url:
            return "openai"
        if self.ep_name:
            return "sagemaker"
        if self.model_id.startswith(("amazon.titan-embed", "cohere.embed")):
            return "bedrock"
        return "local"


class Quantitative(_Section):
    embeddings_model_id: EmbeddingsModel = Field(default_factory=EmbeddingsModel)
    incorrect_verdict_cosine_similarity_threshold: float = 0.40
    correct_verdict_cosine_similarity_threshold: float = 0.01


class Judge(_Section):
    model_id: str
    eval_prompt_template_dir: str | None = None
    eval_prompt_template_name: str | None = None
    # fmb's keys: where the judge is when it is not a Bedrock model.
    backend: Literal["bedrock", "sagemaker", "openai-chat", "openai-completions"] | None = None
    endpoint_url: str | None = None
    api: Literal["openai-chat", "openai-completions"] | None = None
    ep_name: str | None = None
    region: str | None = None
    api_key_env: str | None = None
    # fmb: an experiment of this config as the judge (its endpoint, deployed by fmb or brought),
    # e.g. the local llama.cpp server that also answered as a candidate.
    experiment: str | None = None

    @property
    def resolved_backend(self) -> str:
        if self.experiment:
            return f"experiment {self.experiment}"
        if self.backend:
            return self.backend
        if self.api or self.endpoint_url:
            return self.api or "openai-chat"
        return "bedrock"


class Subjective(_Section):
    judge_panel_list: list[Judge] = Field(default_factory=list)
    run_parallel_inference_count: int = Field(5, ge=1, le=256)
    inference_parameters: dict[str, Any] = Field(default_factory=dict)
    # fmb: per judge call.
    request_timeout_s: float = Field(120.0, gt=0, le=3600)
    max_attempts: int = Field(6, ge=1, le=20)  # tries per judge call when the judge throttles
    retry_backoff_s: float = Field(2.0, ge=0, le=30)


class ModelEvaluations(_Section):
    ground_truth_col: str | None = None
    question_col: str | None = None
    PoLL_Composition_and_Voting: Voting = Field(default_factory=Voting)
    model_eval_dir: EvalDirs = Field(default_factory=EvalDirs)
    quantitative_eval_info: Quantitative = Field(default_factory=Quantitative)
    subjective_eval_info: Subjective = Field(default_factory=Subjective)


class EvalSettings(_Section):
    model_evaluations: ModelEvaluations


def find_settings_file(loaded: LoadedConfig) -> Path:
    """Where the evaluation settings are: next to the config and up, the read folder, else fmb's own."""
    name = loaded.config.model_evaluations or DEFAULT_FILE
    given = Path(name).expanduser()
    if given.is_absolute():
        if given.is_file():
            return given
        raise ConfigError(str(loaded.path), f"model_evaluations: {given} does not exist.")
    folders = [loaded.path.parent, *loaded.path.parent.parents][:4]
    candidates = [folder / name for folder in folders]
    if loaded.config.s3_read_data.configs_prefix:
        candidates.append(loaded.read_root / loaded.config.s3_read_data.configs_prefix / name)
    candidates += [loaded.read_root / name, BUNDLED_CONFIGS / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        str(loaded.path),
        f"model_evaluations: {name!r} was found neither next to the config (or up its folders), nor in the "
        "read folder, nor among fmb's configs.",
        hint="Put FMBench's model_eval_all_info.yml next to the config, or name the file with model_evaluations.",
    )


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_settings(loaded: LoadedConfig) -> tuple[EvalSettings, Path]:
    """The evaluation settings with FMBench's placeholders filled, and the file they came from."""
    path = find_settings_file(loaded)
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"this is not valid YAML ({exc}).") from None
    method = ((raw.get("model_evaluations") or {}).get("PoLL_Composition_and_Voting") or {}).get("method")
    values = {
        **loaded.assignments,
        "ground_truth": loaded.config.datasets.ground_truth_col_key or "",
        "question": loaded.config.datasets.question_col_key or "",
        "method_name": method or "majority_vote",
    }
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(values))
    if missing:
        raise ConfigError(
            str(path),
            f"placeholders without a value: {', '.join('{' + m + '}' for m in missing)}.",
            hint="Give each one with -A, e.g. -A " + f"{missing[0]}=VALUE.",
        )
    filled = _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)
    try:
        settings = EvalSettings.model_validate(yaml.safe_load(filled) or {})
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in err.errors()[:5])
        raise ConfigError(str(path), f"the evaluation settings are not valid: {problems}.") from None
    panel = settings.model_evaluations.subjective_eval_info.judge_panel_list
    if not panel:
        raise ConfigError(str(path), "subjective_eval_info.judge_panel_list names no judge.")
    ids = [j.model_id for j in panel]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ConfigError(
            str(path),
            f"judge_panel_list names {', '.join(twice)} more than once; each judge votes once, under its model_id.",
        )
    return settings, path


def template_text(loaded: LoadedConfig, settings: EvalSettings, judge: Judge) -> tuple[str, str]:
    """A judge's prompt template and its name: the read folder's (FMBench's own files), else fmb's."""
    evaluations = settings.model_evaluations
    method = evaluations.PoLL_Composition_and_Voting.method
    folder = judge.eval_prompt_template_dir or _family_folder(judge.model_id)
    name = judge.eval_prompt_template_name or f"{folder.split('_eval_')[0]}_eval_{method}"
    file = name if name.endswith(".txt") else f"{name}.txt"
    prompts_dir = evaluations.model_eval_dir.eval_prompts_dir or EVAL_CRITERIA
    read_templates = loaded.read_root / loaded.config.s3_read_data.prompt_template_dir / prompts_dir
    for base in (read_templates, BUNDLED_PROMPT_TEMPLATES / EVAL_CRITERIA):
        path = base / folder / file
        if path.is_file():
            return path.read_text(encoding="utf-8"), f"{folder}/{file}"
    raise ConfigError(
        str(loaded.path),
        f"judge {judge.model_id}: prompt template {folder}/{file} was found neither in {read_templates} nor "
        "among fmb's templates.",
        hint="fmb ships templates for the claude, llama3, cohere and mistral families; set "
        "eval_prompt_template_dir to one of them.",
    )


def instructions_text(loaded: LoadedConfig, settings: EvalSettings) -> str:
    """The evaluation rules filled into every judge prompt's {rules}."""
    evaluations = settings.model_evaluations
    prompts_dir = evaluations.model_eval_dir.eval_prompts_dir or EVAL_CRITERIA
    read_templates = loaded.read_root / loaded.config.s3_read_data.prompt_template_dir / prompts_dir
    texts = []
    for name in evaluations.model_eval_dir.eval_instructions_files:
        for base in (read_templates, BUNDLED_PROMPT_TEMPLATES / EVAL_CRITERIA):
            if (base / name).is_file():
                texts.append((base / name).read_text(encoding="utf-8"))
                break
        else:
            raise ConfigError(
                str(loaded.path), f"evaluation instructions {name} were found neither in {read_templates} nor in fmb's."
            )
    return "\n".join(texts)


def _family_folder(model_id: str) -> str:
    lowered = model_id.lower()
    for family in ("claude", "llama3", "cohere", "mistral"):
        if family in lowered or (family == "llama3" and "llama" in lowered):
            return f"{family}_eval_prompt_templates"
    return "cohere_eval_prompt_templates"  # plain text, no chat markers: right for a chat API judge
