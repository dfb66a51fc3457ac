"""Endpoint APIs behind one seam: :class:`~fmb.collector.targets.base.Target`."""

from __future__ import annotations

from fmb.collector.targets.base import Target
from fmb.config import ResolvedExperiment
from fmb.errors import CollectError

IMPLEMENTED = ("openai-chat", "openai-completions")


def make_target(exp: ResolvedExperiment, max_connections: int) -> Target:
    """The target for an experiment's back end."""
    if exp.backend in ("openai-chat", "openai-completions"):
        from fmb.collector.targets.openai import OpenAITarget

        return OpenAITarget(exp, max_connections)
    raise CollectError(
        f"experiment {exp.name!r}: back end {exp.backend!r} is not implemented in this version of fmb "
        f"(implemented: {', '.join(IMPLEMENTED)}).",
        hint="Run the experiments fmb supports with --experiment NAME, or point an OpenAI-compatible "
        "server at the model and set api: openai-chat and endpoint_url.",
    )
