"""Typed schema of FMBench's config format, plus fmb's own additions.

Every section and key that FMBench reads is declared here with its type. Keys that
neither FMBench nor fmb reads are kept (``extra="allow"``) and reported by
``fmb config check`` as ignored, so an FMBench config always loads unchanged.

fmb's additions (all optional, with defaults) are marked "fmb:" in their descriptions.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fmb.config import limits
from fmb.config.limits import Limit
from fmb.paths import partition_value


class Section(BaseModel):
    """A config section: unknown keys are kept and reported, numbers may stand for strings."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, populate_by_name=True, allow_inf_nan=False)


def _none_to_empty_list(value: Any) -> Any:
    return [] if value is None else value


def _none_to_empty_dict(value: Any) -> Any:
    return {} if value is None else value


_BOOLEAN = "got true/false (YAML reads true, false, yes, no, on and off as booleans)"


def _whole_number(value: Any) -> Any:
    """Refuse what pydantic would quietly turn into an int: booleans, fractions, text."""
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, {_BOOLEAN}")
    if isinstance(value, float):
        raise ValueError(f"expected a whole number, got {value:g}")
    if isinstance(value, str):
        raise ValueError("expected a whole number, got text; write the number without quotes")
    if isinstance(value, int) and abs(value) > limits.INTEGER.value:
        raise ValueError(f"the number is too large: {limits.INTEGER.why}")
    return value


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, {_BOOLEAN}")
    if isinstance(value, str):
        raise ValueError("expected a number, got text; write the number without quotes")
    return value


def _at_most(limit: Limit, unit: str = "") -> AfterValidator:
    return AfterValidator(lambda value: limit.check(value, unit))


def _number_maybe_quoted(value: Any) -> Any:
    """FMBench's own configs quote some numbers (model_loading_timeout: "2400"): text that is a number is one."""
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise ValueError("expected a number, got text that is not one") from None
    return _number(value)


def _whole_number_maybe_quoted(value: Any) -> Any:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return _whole_number(value)


# An int that is written as one (no booleans, fractions or quoted numbers), within 64 bits.
WholeNumber = Annotated[int, BeforeValidator(_whole_number)]
# A finite number that is written as one (no booleans or quoted numbers).
Number = Annotated[float, BeforeValidator(_number)]
# FMBench's keys that its sample configs write quoted as well as plain.
QuotedNumber = Annotated[float, BeforeValidator(_number_maybe_quoted)]
QuotedWholeNumber = Annotated[int, BeforeValidator(_whole_number_maybe_quoted)]
Concurrency = Annotated[WholeNumber, _at_most(limits.CONCURRENCY)]
Tokens = Annotated[WholeNumber, _at_most(limits.TOKENS, " tokens")]

# RFC 9110 token characters: what an HTTP header name may hold.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _control_character(text: str) -> str | None:
    """A description of the first control character in ``text`` (tab allowed), or None."""
    for ch in text:
        if ch in "\r\n":
            return "a line break (CR or LF)"
        if (ord(ch) < 0x20 and ch != "\t") or 0x7F <= ord(ch) < 0xA0:
            return f"a control character (U+{ord(ch):04X})"
    return None


def _headers(value: dict[str, Any]) -> dict[str, Any]:
    """Header names are HTTP tokens; values are one line of text (never shown: they may be secret)."""
    for name, text in value.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(
                f"{name!r} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only; "
                "no spaces, colons or line breaks)"
            )
        if isinstance(text, bool):
            raise ValueError(f"header {name!r} needs text, {_BOOLEAN}; write it in quotes")
        if text is None or isinstance(text, dict | list):
            kind = "nothing" if text is None else "a list" if isinstance(text, list) else "a mapping"
            raise ValueError(f"header {name!r} needs one value of text, got {kind}")
        problem = _control_character(str(text))
        if problem:
            raise ValueError(
                f"the value of header {name!r} holds {problem}; a header value is one line of text "
                "without control characters"
            )
    return value


def _file_name_problem(name: str) -> str | None:
    """Why ``name`` is not a plain file name that stays inside its folder, or None."""
    if not name.strip():
        return "it is empty"
    if name in (".", ".."):
        return f"{name!r} is a folder, not a file"
    if "/" in name or "\\" in name:
        return "it holds a folder separator (/ or \\), so the file would lie outside its folder"
    problem = _control_character(name)
    if problem:
        return f"it holds {problem}"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > limits.FILE_NAME_BYTES.value:
        return f"it is {size} bytes long: {limits.FILE_NAME_BYTES.why}"
    return None


def payload_file_problem(name: str) -> str | None:
    """Why a payload file name cannot be used, or None (the files live in the results' payload folder)."""
    problem = _file_name_problem(name)
    if problem is None:
        return None
    return f"a payload file is a file name in fmb's payload folder, not a path, and {problem}"


def _folder_name(value: str) -> str:
    """A benchmark or experiment name: it names results folders (percent-encoded), so not blank or too long."""
    if not value.strip():
        raise ValueError("must not be empty")
    size = len(partition_value(value))
    if size > limits.FOLDER_NAME_CHARS.value:
        raise ValueError(
            f"is {size} characters once percent-encoded, more than the limit of "
            f"{limits.FOLDER_NAME_CHARS.value}: {limits.FOLDER_NAME_CHARS.why}"
        )
    return value


class General(Section):
    name: Annotated[str, AfterValidator(_folder_name)] = Field(
        description="Name of the benchmark; results and reports are filed under it."
    )
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

    _lists = field_validator("script_files", "config_files", "source_data_files", mode="before")(_none_to_empty_list)


class Filter(Section):
    language: str | None = None
    min_length_in_tokens: Tokens = Field(ge=0)
    max_length_in_tokens: Tokens = Field(gt=0)
    payload_file: str

    @field_validator("payload_file")
    @classmethod
    def _stays_in_its_folder(cls, value: str, info: ValidationInfo) -> str:
        filled = value
        for name, fill in (
            ("lang", info.data.get("language")),
            ("min", info.data.get("min_length_in_tokens")),
            ("max", info.data.get("max_length_in_tokens")),
        ):
            filled = filled.replace("{" + name + "}", "" if fill is None else str(fill))
        problem = payload_file_problem(filled)
        if problem:
            shown = "" if filled == value else f" (filled in: {filled!r})"
            raise ValueError(f"{value!r}{shown}: {problem}")
        return value

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

    seed: WholeNumber = 0
    records: Annotated[WholeNumber, _at_most(limits.SYNTHETIC_RECORDS)] = Field(
        200, gt=0, description="synthetic:longbench: number of records."
    )
    min_context_words: Annotated[WholeNumber, _at_most(limits.SYNTHETIC_WORDS, " words")] = Field(20, gt=0)
    max_context_words: Annotated[WholeNumber, _at_most(limits.SYNTHETIC_WORDS, " words")] = Field(3000, gt=0)
    prompts_per_filter: Annotated[WholeNumber, _at_most(limits.SYNTHETIC_RECORDS)] = Field(
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
    min_iters_per_combination: Annotated[WholeNumber, _at_most(limits.ITERS_PER_COMBINATION)] = Field(
        5, ge=1, description="Each (payload file, concurrency) cell gets at least this many rounds."
    )
    max_iters_per_combination: Annotated[WholeNumber, _at_most(limits.ITERS_PER_COMBINATION)] = Field(
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
    latency_budget: Number | None = Field(None, ge=0, description="Seconds, against p95 latency.")
    cost_per_10k_txn_budget: Number | None = Field(None, ge=0, description="USD per 10,000 transactions.")
    error_rate_budget: Number | None = Field(None, ge=0, le=1)
    accuracy_budget: Number | None = Field(
        None, ge=0, le=1, description="Minimum accuracy of the judges' majority vote, 0 to 1 (FMBench: 1 is 100%)."
    )
    accuracy_error_rate_budget: Number | None = None
    cosine_similarity_budget: Number | None = None
    # Left None when not given (a default here would change every config's hash); fmb report fills in
    # FMBench's names. Only the file name is used: the files go beside report.md.
    per_inference_request_file: str | None = Field(
        None,
        description="FMBench's per-request results CSV, written by fmb report beside report.md "
        "(default per_inference_request_results.csv; {{datetime}} in the config is the run's start).",
    )
    all_metrics_file: str | None = Field(
        None,
        description="FMBench's per-cell metrics CSV, written by fmb report beside report.md "
        "(default all_metrics.csv; {{datetime}} in the config is the run's start).",
    )
    txn_count_for_showing_cost: WholeNumber = Field(10000, gt=0)
    selection: Literal["cheapest", "fmbench"] = Field(
        "cheapest",
        description="fmb: how the best option is chosen among the cells that meet every budget: cheapest (the "
        "lowest cost per 10k transactions) or fmbench (FMBench's rule: the highest concurrency).",
    )
    min_requests_for_best: WholeNumber = Field(
        20, ge=0, description="fmb: a cell that measured fewer requests is never chosen as the best option."
    )
    v_shift_w_single_instance: Number | None = None
    v_shift_w_gt_one_instance: Number | None = None


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
    model_loading_timeout: QuotedNumber | None = Field(None, gt=0)
    inference_url_format: str | None = Field(
        None, description="FMBench (EKS): appended to the ingress address to make the endpoint URL."
    )
    cli_params: str | None = None
    container_params: dict[str, Any] | None = Field(
        None, description="FMBench: Triton's model parameters (tp_degree, batch_size, serving.properties, ...)."
    )
    backend: str | None = Field(None, description="FMBench: Triton's backend on Neuron hosts (vllm or djl).")
    batch_size: WholeNumber | None = Field(None, ge=1, description="FMBench: Triton's maximum batch size.")
    headers: Annotated[dict[str, Any], AfterValidator(_headers)] = Field(default_factory=dict)
    model_id: str | None = None

    _empty_headers = field_validator("headers", mode="before")(_none_to_empty_dict)


class LocalServer(Section):
    """fmb: a model server that fmb starts as a child process (the `local` hosting option)."""

    server: Literal["llama.cpp", "command"] = "llama.cpp"
    model_path: str | None = None
    threads: Annotated[WholeNumber, _at_most(limits.THREADS)] | None = Field(None, gt=0)
    parallel: Concurrency = Field(1, gt=0)
    context_size: Tokens = Field(4096, gt=0)
    command: list[str] | None = None
    ready_url: str | None = None
    startup_timeout_s: Annotated[Number, _at_most(limits.DEPLOY_TIMEOUT_S, " s")] = Field(300, gt=0)


OpenAIApi = Literal["openai-chat", "openai-completions"]


class Ec2Settings(Section):
    """FMBench's `ec2:` section of an experiment deployed with ec2_deploy.py, and fmb's additions."""

    gpu_or_neuron_setting: str | None = Field(
        None, description="FMBench: docker run flags for the accelerator, e.g. --gpus all --shm-size 12g."
    )
    model_loading_timeout: Annotated[QuotedNumber, _at_most(limits.DEPLOY_TIMEOUT_S, " s")] | None = Field(
        None, gt=0, description="FMBench: seconds the container may take to answer its first request."
    )
    privileged_mode: bool = Field(False, description="FMBench: run the container privileged.")
    instance_count: QuotedWholeNumber | None = Field(
        None, ge=1, description="FMBench (neuron_deploy.py): instances of the SageMaker endpoint."
    )
    accelerator: Literal["auto", "nvidia", "neuron", "none"] = Field(
        "auto",
        description="fmb: the host's accelerator; auto looks for NVIDIA GPUs (NVML) and Neuron devices (/dev/neuron*).",
    )
    host_port: Literal["config", "auto"] | Annotated[int, Field(ge=1, le=65535)] = Field(
        "config",
        description="fmb: host port of the first copy: the port in ep_name (config, as FMBench), a free port "
        "chosen by Docker (auto) or this number; copy i listens on that port + i.",
    )


class EksSettings(Section):
    """FMBench's `eks:` section of an experiment deployed with eks_deploy.py, and fmb's additions."""

    eks_cluster_name: str | None = Field(
        None, description="FMBench: the EKS cluster; fmb uses the kubeconfig context that names it."
    )
    eks_model_namespace: str | None = Field(
        None, description="FMBench: the model's namespace; fmb: objects of the manifest that name none go here."
    )
    manifest_dir: str | None = Field(
        None, description="FMBench: folder of the manifest, e.g. configs/eks_manifests (looked up from the config)."
    )
    manifest_file: str | None = Field(
        None, description="FMBench: the Kubernetes manifest (YAML, one or more objects) to apply."
    )
    kubeconfig: str | None = Field(
        None, description="fmb: the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)."
    )
    context: str | None = Field(
        None, description="fmb: the kubeconfig context (default: the one whose cluster is eks_cluster_name)."
    )


LoadMode = Literal["closed", "waves", "constant", "poisson", "gamma", "trace"]
OPEN_LOOP_MODES = ("constant", "poisson", "gamma")


class Load(Section):
    """fmb: how an experiment's requests are sent (its load levels)."""

    mode: LoadMode = Field(
        "closed",
        description="fmb: closed (continuous: each of `concurrency` workers sends its next request as soon as its "
        "last one ended), waves (FMBench's: `concurrency` requests, wait for all, repeat), constant, poisson or "
        "gamma (open loop: requests sent at scheduled times, whatever is in flight), or trace (the arrival times "
        "of load.trace_file).",
    )
    rates: list[Annotated[Number, Field(gt=0, le=limits.REQUEST_RATE.value)]] = Field(
        default_factory=list,
        description="fmb (open loop): arrival rates in requests per second; each is a load level of its own.",
    )
    burstiness: Number = Field(
        1.0,
        gt=0,
        le=1000,
        description="fmb (gamma): the gamma distribution's shape; 1 is Poisson, below 1 burstier, above 1 steadier.",
    )
    max_in_flight: Concurrency | None = Field(
        None,
        ge=1,
        description="fmb (open loop, trace): at most this many requests in flight; a request due while the cap is "
        "reached waits, and its wait counts as lateness (default: no cap).",
    )
    requests: Annotated[WholeNumber, _at_most(limits.REQUESTS_PER_CELL)] | None = Field(
        None,
        ge=1,
        description="fmb (open loop): measured requests per level (default: FMBench's count for the experiment's "
        "highest concurrency level).",
    )
    duration_s: Annotated[Number, _at_most(limits.CELL_DURATION_S, " s")] | None = Field(
        None, gt=0, description="fmb (open loop): measure for this long per level instead of a request count."
    )
    ramp_up_s: Annotated[Number, _at_most(limits.CELL_DURATION_S, " s")] = Field(
        0,
        ge=0,
        description="fmb (open loop): the rate rises linearly from 0 over this time first; the requests scheduled "
        "then are warm-ups.",
    )
    seed: WholeNumber = Field(0, ge=0, description="fmb (open loop): seed of the arrival times (same seed, same times)")
    lateness_threshold_ms: Number = Field(
        10,
        gt=0,
        description="fmb (open loop, trace): a level whose p99 send lateness (sent minus scheduled) is above this "
        "is flagged: the client fell behind its schedule.",
    )
    trace_file: str | None = Field(
        None,
        description="fmb (trace): JSONL, one request a line: timestamp (seconds), optional input_length (tokens: "
        "the prompt of the payload file nearest in length is sent) and output_length (tokens: the request's "
        "maximum new tokens).",
    )
    stop_past_knee: bool = Field(
        False,
        description="fmb: a sweep: send the levels from the lowest up (per payload file) and skip the rest once a "
        "level's throughput grew by less than knee_min_throughput_gain over the level below, its share of requests "
        "within the SLO fell under knee_min_slo_attainment, or its client fell behind its schedule.",
    )
    knee_min_throughput_gain: Number = Field(
        0.1, ge=0, le=100, description="fmb: the knee's rule: least growth in throughput from one level to the next."
    )
    knee_min_slo_attainment: Number = Field(
        0.9, ge=0, le=1, description="fmb: the knee's rule: the least share of a level's requests within the SLO."
    )
    trace_speedups: list[Annotated[Number, Field(gt=0, le=1000)]] = Field(
        default_factory=lambda: [1.0],
        description="fmb (trace): replay the trace this many times faster; each is a load level of its own.",
    )

    @model_validator(mode="after")
    def _complete(self) -> Load:
        if self.mode in OPEN_LOOP_MODES and not self.rates:
            raise ValueError(f"load.mode {self.mode} needs load.rates (requests per second, e.g. [1, 2, 4])")
        if self.mode not in OPEN_LOOP_MODES and self.rates:
            raise ValueError(f"load.rates is for the open-loop modes ({', '.join(OPEN_LOOP_MODES)}), not {self.mode}")
        if self.mode == "trace" and not self.trace_file:
            raise ValueError("load.mode trace needs load.trace_file (JSONL with a timestamp per request)")
        for name, levels in (("rates", self.rates), ("trace_speedups", self.trace_speedups)):
            twice = sorted({f"{v:g}" for v in levels if sum(f"{w:g}" == f"{v:g}" for w in levels) > 1})
            if twice:
                raise ValueError(f"load.{name} lists {', '.join(twice)} more than once; each is a load level")
        if self.requests is not None and self.duration_s is not None:
            raise ValueError("give load.requests or load.duration_s, not both")
        return self

    @property
    def is_open(self) -> bool:
        """Requests are sent at scheduled times (open loop or trace), not when a worker is free."""
        return self.mode in OPEN_LOOP_MODES or self.mode == "trace"


class Slo(Section):
    """fmb: service-level objectives a request must meet to count towards goodput."""

    ttft_ms: Number | None = Field(None, gt=0, description="fmb: time to first token at most this (streamed only).")
    tpot_ms: Number | None = Field(None, gt=0, description="fmb: time per output token at most this (streamed only).")
    e2e_latency_ms: Number | None = Field(None, gt=0, description="fmb: end-to-end latency at most this.")


class Experiment(Section):
    name: Annotated[str, AfterValidator(_folder_name)]
    region: str | None = None
    model_id: str | None = None
    model_version: str | None = None
    model_name: str | None = None
    hf_tokenizer_model_id: str | None = None
    hf_model_id: str | None = None
    ep_name: str | None = None
    production_variant_name: str | None = None
    instance_type: str | None = None
    instance_count: WholeNumber | None = Field(None, ge=1)
    image_uri: str | None = None
    deploy: bool = False
    deployment_script: str | None = None
    inference_script: str | None = None
    inference_spec: InferenceSpec = Field(default_factory=InferenceSpec)
    payload_files: list[str]
    concurrency_levels: list[Concurrency]
    load: Load = Field(default_factory=Load, description="fmb: how the requests are sent (default: closed loop).")
    slo: Slo = Field(
        default_factory=Slo,
        description="fmb: objectives per request (ttft_ms, tpot_ms, e2e_latency_ms); a successful request that meets "
        "all of them counts towards goodput.",
    )
    accept_eula: bool | None = None
    env: dict[str, Any] = Field(default_factory=dict)
    ec2: Ec2Settings = Field(default_factory=Ec2Settings)
    eks: EksSettings | None = Field(None, description="FMBench: the EKS deployment (eks_deploy.py).")
    serving_properties: str | None = Field(None, alias="serving.properties")
    sagemaker_execution_role: str | None = Field(
        None, description="FMBench (neuron_deploy.py): the endpoint's execution role, instead of aws's."
    )
    download_from_hf_place_in_s3: bool | None = Field(
        None, description="FMBench (DJL): copy the model from Hugging Face to model_s3_path first (fmb does not)."
    )
    model_s3_path: str | None = Field(None, description="FMBench (DJL): where the model's files are in S3.")
    bucket: str | None = None
    use_messages_api_format: bool | None = Field(
        None, description="SageMaker: send {messages: [...]} (the messages API) instead of {inputs, parameters}."
    )
    # fmb additions
    api: OpenAIApi | None = Field(
        None, description="fmb: the API of an OpenAI-compatible server (vLLM, TGI, llama.cpp, ...)."
    )
    endpoint_url: str | None = Field(None, description="fmb: base URL of the endpoint.")
    metrics_url: str | None = Field(
        None,
        description="fmb: URL of the server's Prometheus metrics (default: the /metrics of the container types and "
        "local servers that have one); 'none' turns scraping off for this experiment.",
    )
    stream: bool | None = Field(
        None,
        description="fmb: stream responses; overrides inference_spec.stream (default: FMBench's, not streamed).",
    )
    request_timeout_s: Annotated[Number, _at_most(limits.REQUEST_TIMEOUT_S, " s")] = Field(
        120, gt=0, description="fmb: a request slower than this is a timeout row."
    )
    warmup_requests: Annotated[WholeNumber, _at_most(limits.WARMUP_REQUESTS)] = Field(
        0, ge=0, description="fmb: requests sent before each cell and not measured."
    )
    api_key_env: str | None = Field(
        None, description="fmb: name of the environment variable that holds the API key (never the key)."
    )
    headers: Annotated[dict[str, Any], AfterValidator(_headers)] = Field(
        default_factory=dict, description="fmb: extra HTTP headers."
    )
    local: LocalServer | None = Field(None, description="fmb: a server fmb starts itself.")
    max_attempts: Annotated[WholeNumber, _at_most(limits.ATTEMPTS)] = Field(
        1, ge=1, description="fmb: tries per request when the endpoint throttles (1: no retries)."
    )
    retry_backoff_s: Annotated[Number, _at_most(limits.RETRY_BACKOFF_S, " s")] = Field(
        1.0, ge=0, description="fmb: first wait before a retry after throttling; doubles each time, at most 30 s."
    )
    deploy_timeout_s: Annotated[Number, _at_most(limits.DEPLOY_TIMEOUT_S, " s")] = Field(
        3600, gt=0, description="fmb: how long a deployment may take to answer."
    )
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

    @field_validator("payload_files")
    @classmethod
    def _payload_file_names(cls, value: list[str]) -> list[str]:
        for name in value:
            problem = payload_file_problem(name)
            if problem:
                raise ValueError(f"{name!r}: {problem}")
        return value

    @field_validator("concurrency_levels")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        bad = [c for c in value if c < 1]
        if bad:
            raise ValueError(f"concurrency levels must be 1 or more, got {bad}")
        return value

    @model_validator(mode="after")
    def _open_loop_warmup(self) -> Experiment:
        if self.load.is_open and self.warmup_requests:
            raise ValueError(
                f"warmup_requests is for closed loop and waves; load.mode {self.load.mode} warms up with "
                "load.ramp_up_s (the requests due during the ramp are not measured)"
            )
        return self


class Telemetry(Section):
    """fmb: what is sampled beside the requests while `fmb collect` runs."""

    enabled: bool = Field(
        True,
        description="fmb: sample this host's CPU, memory, NVIDIA GPUs and NeuronCores while collecting from an "
        "endpoint fmb deployed here (local or ec2) into raw/host_metrics.",
    )
    host_interval_s: Number = Field(1.0, ge=0.1, le=3600, description="fmb: seconds between two host samples.")
    server_metrics: bool = Field(
        True,
        description="fmb: scrape each experiment's Prometheus metrics (its metrics_url, by default the /metrics "
        "of the servers that have one) into raw/server_metrics.",
    )
    server_interval_s: Number = Field(1.0, ge=0.1, le=3600, description="fmb: seconds between two scrapes.")
    cloudwatch: bool = Field(
        True,
        description="fmb: fetch the CloudWatch metrics of SageMaker and Bedrock experiments for the run's window "
        "into raw/endpoint_metrics.",
    )
    cloudwatch_period_s: WholeNumber = Field(
        60, ge=1, le=3600, description="fmb: CloudWatch period of the datapoints fetched (60 s: standard metrics)."
    )
    client: bool = Field(
        True,
        description="fmb: sample the collector itself (CPU, event-loop lag, requests in flight) into "
        "raw/client_metrics.",
    )
    client_interval_s: Number = Field(1.0, ge=0.1, le=3600, description="fmb: seconds between two client samples.")


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
    # None when absent (the defaults apply), so that configs without it keep their hash.
    telemetry: Telemetry | None = Field(None, description="fmb: telemetry sampled beside the requests.")

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
