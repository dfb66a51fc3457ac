"""Typed schema of FMBench's config format, plus fmb's own additions.

Every section and key that FMBench reads is declared here with its type. Keys that
neither FMBench nor fmb reads are kept (``extra="allow"``) and reported by
``fmb config check`` as ignored, so an FMBench config always loads unchanged.

fmb's additions (all optional, with defaults) are marked "fmb:" in their descriptions.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Section(BaseModel):
    """A config section: unknown keys are kept and reported, numbers may stand for strings."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, populate_by_name=True)


def _none_to_empty_list(value: Any) -> Any:
    return [] if value is None else value


def _none_to_empty_dict(value: Any) -> Any:
    return {} if value is None else value


class General(Section):
    name: str = Field(description="Name of the benchmark; results and reports are filed under it.")
    model_name: str | None = Field(None, description="Model shown in the report header.")


class Aws(Section):
    region: str | None = None
    sagemaker_execution_role: str | None = None
    bucket: str | None = None
    s3_and_or_local_file_system: Literal["s3", "local", "both"] | None = None
    local_file_system_path: str | None = None


class DirPaths(Section):
    data_prefix: str | None = None
    prompts_prefix: str | None = None
    all_prompts_file: str | None = None
    metrics_dir: str | None = None
    models_dir: str | None = None
    metadata_dir: str | None = None


class S3ReadData(Section):
    read_bucket: str | None = None
    s3_or_local_file_system: Literal["s3", "local"] | None = None
    local_file_system_path: str | None = None
    scripts_prefix: str | None = None
    script_files: list[str] = Field(default_factory=list)
    configs_prefix: str | None = None
    config_files: list[str] = Field(default_factory=list)
    source_data_prefix: str = "source_data"
    source_data_files: list[str] = Field(
        default_factory=list,
        description=(
            "JSONL files under source_data_prefix; fmb: also 'synthetic:longbench' and "
            "'synthetic:exact-lengths' for the built-in offline datasets."
        ),
    )
    tokenizer_prefix: str | None = None
    prompt_template_dir: str = "prompt_template"
    prompt_template_file: str | None = None

    _lists = field_validator("script_files", "config_files", "source_data_files", mode="before")(
        _none_to_empty_list
    )


class Filter(Section):
    language: str | None = None
    min_length_in_tokens: int = Field(ge=0)
    max_length_in_tokens: int = Field(gt=0)
    payload_file: str

    @model_validator(mode="after")
    def _bounds(self) -> Filter:
        if self.max_length_in_tokens <= self.min_length_in_tokens:
            raise ValueError(
                f"max_length_in_tokens ({self.max_length_in_tokens}) must be greater than "
                f"min_length_in_tokens ({self.min_length_in_tokens}); the range is [min, max)"
            )
        return self

    def file_name(self) -> str:
        """The payload file name with FMBench's `{lang}`, `{min}`, `{max}` filled."""
        return (
            self.payload_file.replace("{lang}", self.language or "")
            .replace("{min}", str(self.min_length_in_tokens))
            .replace("{max}", str(self.max_length_in_tokens))
        )


class Synthetic(Section):
    """fmb: parameters of the built-in synthetic datasets (no download needed)."""

    seed: int = 0
    records: int = Field(200, gt=0, description="synthetic:longbench: number of records.")
    min_context_words: int = Field(20, gt=0)
    max_context_words: int = Field(3000, gt=0)
    prompts_per_filter: int = Field(
        50, gt=0, description="synthetic:exact-lengths: prompts generated for each filter."
    )
    length_distribution: Literal["uniform", "normal", "lognormal"] = Field(
        "uniform",
        description="synthetic:exact-lengths: how prompt lengths are drawn inside a filter's range.",
    )


class Datasets(Section):
    prompt_template_keys: list[str] = Field(default_factory=list)
    ground_truth_col_key: str | None = None
    question_col_key: str | None = None
    min_iters_per_combination: int = Field(
        5, ge=1, description="Each (payload file, concurrency) cell gets at least this many rounds."
    )
    max_iters_per_combination: int = Field(
        105, ge=1, description="... and at most this many rounds; a round is one request per slot."
    )
    filters: list[Filter] = Field(default_factory=list)
    tokenizer: str | None = Field(
        None,
        description="fmb: a tokenizer.json file or a Hugging Face tokenizer directory used to count tokens.",
    )
    synthetic: Synthetic = Field(default_factory=Synthetic)

    _lists = field_validator("prompt_template_keys", "filters", mode="before")(_none_to_empty_list)

    @model_validator(mode="after")
    def _iters(self) -> Datasets:
        if self.max_iters_per_combination < self.min_iters_per_combination:
            raise ValueError(
                f"max_iters_per_combination ({self.max_iters_per_combination}) is smaller than "
                f"min_iters_per_combination ({self.min_iters_per_combination})"
            )
        return self


class Metrics(Section):
    dataset_of_interest: str | None = Field(
        None, description="Matched as a substring of payload file names, as FMBench does."
    )


class Report(Section):
    title: str | None = None
    latency_budget: float | None = Field(None, ge=0, description="Seconds, against p95 latency.")
    cost_per_10k_txn_budget: float | None = Field(None, ge=0, description="USD per 10,000 transactions.")
    error_rate_budget: float | None = Field(None, ge=0, le=1)
    accuracy_budget: float | None = None
    accuracy_error_rate_budget: float | None = None
    cosine_similarity_budget: float | None = None
    per_inference_request_file: str | None = None
    all_metrics_file: str | None = None
    txn_count_for_showing_cost: int = Field(10000, gt=0)
    v_shift_w_single_instance: float | None = None
    v_shift_w_gt_one_instance: float | None = None


class InferenceSpec(Section):
    parameter_set: str | None = None
    stream: bool | None = None
    start_token: str | None = None
    stop_token: str | None = None
    split_input_and_parameters: bool | None = None
    container_type: str | None = None
    model_copies: str | None = None
    tp_degree: str | None = None
    shm_size: str | None = None
    model_loading_timeout: float | None = None
    cli_params: str | None = None
    headers: dict[str, Any] = Field(default_factory=dict)
    model_id: str | None = None

    _headers = field_validator("headers", mode="before")(_none_to_empty_dict)


class LocalServer(Section):
    """fmb: a model server that fmb starts as a child process (the `local` hosting option)."""

    server: Literal["llama.cpp", "command"] = "llama.cpp"
    model_path: str | None = None
    threads: int | None = Field(None, gt=0)
    parallel: int = Field(1, gt=0)
    context_size: int = Field(4096, gt=0)
    command: list[str] | None = None
    ready_url: str | None = None
    startup_timeout_s: float = Field(300, gt=0)


OpenAIApi = Literal["openai-chat", "openai-completions"]


class Experiment(Section):
    name: str
    region: str | None = None
    model_id: str | None = None
    model_version: str | None = None
    model_name: str | None = None
    hf_tokenizer_model_id: str | None = None
    hf_model_id: str | None = None
    ep_name: str | None = None
    production_variant_name: str | None = None
    instance_type: str | None = None
    instance_count: int | None = Field(None, ge=1)
    image_uri: str | None = None
    deploy: bool = False
    deployment_script: str | None = None
    inference_script: str | None = None
    inference_spec: InferenceSpec = Field(default_factory=InferenceSpec)
    payload_files: list[str]
    concurrency_levels: list[int]
    accept_eula: bool | None = None
    env: dict[str, Any] = Field(default_factory=dict)
    ec2: dict[str, Any] = Field(default_factory=dict)
    serving_properties: str | None = Field(None, alias="serving.properties")
    bucket: str | None = None
    use_messages_api_format: bool | None = Field(
        None, description="SageMaker: send {messages: [...]} (the messages API) instead of {inputs, parameters}."
    )
    # fmb additions
    api: OpenAIApi | None = Field(
        None, description="fmb: the API of an OpenAI-compatible server (vLLM, TGI, llama.cpp, ...)."
    )
    endpoint_url: str | None = Field(None, description="fmb: base URL of the endpoint.")
    stream: bool | None = Field(None, description="fmb: stream responses (default true).")
    request_timeout_s: float = Field(120, gt=0, description="fmb: a request slower than this is a timeout row.")
    warmup_requests: int = Field(0, ge=0, description="fmb: requests sent before each cell and not measured.")
    api_key_env: str | None = Field(
        None, description="fmb: name of the environment variable that holds the API key (never the key)."
    )
    headers: dict[str, Any] = Field(default_factory=dict, description="fmb: extra HTTP headers.")
    local: LocalServer | None = Field(None, description="fmb: a server fmb starts itself.")
    max_attempts: int = Field(
        1, ge=1, le=20, description="fmb: tries per request when the endpoint throttles (1: no retries)."
    )
    retry_backoff_s: float = Field(
        1.0, ge=0, description="fmb: first wait before a retry after throttling; doubles each time, at most 30 s."
    )
    deploy_timeout_s: float = Field(3600, gt=0, description="fmb: how long a deployment may take to answer.")
    bedrock_api: Literal["converse", "invoke-model"] | None = Field(
        None, description="fmb: Bedrock API (default: Converse, InvokeModel for the families Converse lacks)."
    )

    _maps = field_validator("env", "ec2", "headers", mode="before")(_none_to_empty_dict)

    @field_validator("payload_files", "concurrency_levels", mode="before")
    @classmethod
    def _non_empty(cls, value: Any) -> Any:
        if value is None or value == []:
            raise ValueError("must list at least one entry")
        return value

    @field_validator("concurrency_levels")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        bad = [c for c in value if c < 1]
        if bad:
            raise ValueError(f"concurrency levels must be 1 or more, got {bad}")
        return value


class FmbenchConfig(Section):
    general: General
    aws: Aws = Field(default_factory=Aws)
    dir_paths: DirPaths = Field(default_factory=DirPaths)
    s3_read_data: S3ReadData = Field(default_factory=S3ReadData)
    run_steps: dict[str, bool] = Field(default_factory=dict)
    datasets: Datasets = Field(default_factory=Datasets)
    metrics: Metrics = Field(default_factory=Metrics)
    model_evaluations: str | None = None
    pricing: str = "pricing.yml"
    inference_parameters: dict[str, dict[str, Any]] = Field(default_factory=dict)
    experiments: list[Experiment]
    report: Report = Field(default_factory=Report)

    _maps = field_validator("run_steps", "inference_parameters", mode="before")(_none_to_empty_dict)

    @field_validator("inference_parameters", mode="before")
    @classmethod
    def _parameter_sets(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    @field_validator("experiments", mode="before")
    @classmethod
    def _experiments(cls, value: Any) -> Any:
        if value is None or value == []:
            raise ValueError("must list at least one experiment")
        return value
