"""Endpoint APIs behind one seam: :class:`~fmb.collector.targets.base.Target`."""

from __future__ import annotations

from fmb.collector.targets.base import Target

from fmb.config import LoadedConfig, ResolvedExperiment


def make_target(exp: ResolvedExperiment, loaded: LoadedConfig, max_connections: int) -> Target:
    """The target for an experiment's back end (every back end fmb knows has one)."""
    from fmb.collector.targets import containers, openai

    http_targets = {
        "openai-chat": openai.OpenAITarget,
        "openai-completions": openai.OpenAITarget,
        "tgi": containers.TGITarget,
        "triton": containers.TritonTarget,
        "djl": containers.DJLTarget,
        "ollama": containers.OllamaTarget,
        "llama-cpp": containers.LlamaCppTarget,
        "custom-rest": containers.CustomRestTarget,
    }
    if exp.backend in http_targets:
        return http_targets[exp.backend](exp, max_connections)
    if exp.backend == "sagemaker":
        from fmb.collector.targets.sagemaker import SageMakerTarget

        return SageMakerTarget(exp, loaded, max_connections)
    from fmb.collector.targets.bedrock import BedrockTarget

    return BedrockTarget(exp, loaded, max_connections)
