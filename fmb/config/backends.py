"""Which endpoint API an experiment talks to, from FMBench's keys or fmb's `api`.

FMBench picks a predictor script per experiment (``inference_script``) and, for EC2 and
EKS containers, a ``container_type``. fmb maps each onto one of its targets, so a config
written for FMBench runs unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from fmb.config.schema import Experiment


@dataclass(frozen=True)
class Backend:
    """A back end fmb can send requests to: what it is, and the collector target that speaks it."""

    description: str
    target: str  # "module:Class", imported only when a target is made


# The one registry of back ends: config resolution maps FMBench's keys onto these ids, and
# the collector makes its targets from here (an id missing here is an error, never a default).
BACKENDS: dict[str, Backend] = {
    "openai-chat": Backend("OpenAI-compatible /v1/chat/completions", "fmb.collector.targets.openai:OpenAITarget"),
    "openai-completions": Backend("OpenAI-compatible /v1/completions", "fmb.collector.targets.openai:OpenAITarget"),
    "sagemaker": Backend(
        "Amazon SageMaker endpoint (InvokeEndpoint / InvokeEndpointWithResponseStream)",
        "fmb.collector.targets.sagemaker:SageMakerTarget",
    ),
    "bedrock": Backend(
        "Amazon Bedrock (Converse / ConverseStream / InvokeModel)", "fmb.collector.targets.bedrock:BedrockTarget"
    ),
    "tgi": Backend("Hugging Face TGI /generate and /generate_stream", "fmb.collector.targets.containers:TGITarget"),
    "triton": Backend(
        "Triton /v2/models/<model>/generate and generate_stream", "fmb.collector.targets.containers:TritonTarget"
    ),
    "djl": Backend("DJL Serving /invocations", "fmb.collector.targets.containers:DJLTarget"),
    "ollama": Backend("Ollama /api/generate", "fmb.collector.targets.containers:OllamaTarget"),
    "llama-cpp": Backend("llama.cpp server /completion", "fmb.collector.targets.containers:LlamaCppTarget"),
    "custom-rest": Backend(
        "FMBench's custom REST predictor shape", "fmb.collector.targets.containers:CustomRestTarget"
    ),
    "ray-serve": Backend(
        "Ray Serve GET <route>?sentence=<prompt> (FMBench's EKS manifests)",
        "fmb.collector.targets.containers:RayServeTarget",
    ),
}

_PREDICTOR_SCRIPTS = {
    "sagemaker_predictor.py": "sagemaker",
    "bedrock_predictor.py": "bedrock",
    "custom_rest_predictor.py": "custom-rest",
    "openai_predictor.py": "openai-chat",
    "rest_predictor.py": "ray-serve",
}
_CONTAINER_SCRIPTS = {"ec2_predictor.py", "eks_predictor.py"}
# A container script's back end when it names no container_type (FMBench's eks_predictor.py
# sends to the Ray Serve route of its EKS manifests and reads no container_type).
_SCRIPT_DEFAULTS = {"eks_predictor.py": "ray-serve"}
_CONTAINER_TYPES = {
    None: "djl",
    "djl": "djl",
    "vllm": "openai-completions",
    "vllm_gpu": "openai-completions",
    "vllm_neuron": "openai-completions",
    "sglang": "openai-completions",
    "triton": "triton",
    "ollama": "ollama",
    "llama_server": "llama-cpp",
    "llama.cpp": "llama-cpp",
    "tgi": "tgi",
}


@dataclass(frozen=True)
class Resolution:
    backend: str | None
    problem: str | None = None
    key: str | None = None


def known_scripts() -> str:
    scripts = sorted(_PREDICTOR_SCRIPTS) + sorted(_CONTAINER_SCRIPTS)
    types = sorted(t for t in _CONTAINER_TYPES if t)
    return (
        f"inference_script one of {', '.join(scripts)} "
        f"(container_type for EC2/EKS: {', '.join(types)}), "
        "or fmb's api: openai-chat | openai-completions with endpoint_url"
    )


def resolve_backend(exp: Experiment) -> Resolution:
    """The fmb target for an experiment, or the reason there is none."""
    if exp.api:
        return Resolution(exp.api)
    script = exp.inference_script
    if script in _PREDICTOR_SCRIPTS:
        return Resolution(_PREDICTOR_SCRIPTS[script])
    if script in _CONTAINER_SCRIPTS:
        ctype = exp.inference_spec.container_type
        if ctype is None and script in _SCRIPT_DEFAULTS:
            return Resolution(_SCRIPT_DEFAULTS[script])
        if ctype in _CONTAINER_TYPES:
            return Resolution(_CONTAINER_TYPES[ctype])
        types = ", ".join(sorted(t for t in _CONTAINER_TYPES if t))
        return Resolution(
            None,
            f"container_type {ctype!r} is not supported; use one of {types}",
            "inference_spec.container_type",
        )
    if script is None:
        if exp.endpoint_url:
            return Resolution("openai-chat")
        return Resolution(None, f"no inference_script and no api; set {known_scripts()}", "inference_script")
    return Resolution(None, f"{script!r} is not a back end fmb knows; set {known_scripts()}", "inference_script")
