"""FMBench's run_steps (old and new notebook names) mapped onto fmb's steps."""

from __future__ import annotations

import re

# fmb's steps, in the order `fmb run` takes them.
STEPS = ("prepare", "deploy", "collect", "evaluate", "build", "report", "cleanup")

# FMBench step names without their number and extension, and fmb's own names.
_ALIASES = {
    "setup": None,  # fmb needs no setup step; accepted and ignored
    "generate_data": ("prepare",),
    "deploy_model": ("deploy",),
    "run_inference": ("collect",),
    "get_evaluations": ("evaluate",),
    "train_model": None,
    "model_metric_analysis": ("build", "report"),
    "cleanup": ("cleanup",),
    "prepare": ("prepare",),
    "deploy": ("deploy",),
    "collect": ("collect",),
    "build": ("build",),
    "report": ("report",),
    "evaluate": ("evaluate",),
}
_NAME = re.compile(r"^(?:\d+_)?(?P<name>[a-z_]+?)(?:\.ipynb|\.py)?$")


def normalise_step(name: str) -> tuple[str, ...] | None:
    """The fmb steps an FMBench step name stands for; None for a step fmb skips.

    Raises KeyError for a name that is neither an FMBench nor an fmb step.
    """
    match = _NAME.match(name.strip())
    if not match or match.group("name") not in _ALIASES:
        raise KeyError(name)
    return _ALIASES[match.group("name")]


def enabled_steps(run_steps: dict[str, bool]) -> tuple[list[str], list[str]]:
    """The fmb steps to run (in fmb's order) and notes about names that map to nothing.

    A config without run_steps runs every step but evaluate (judging costs judge calls, so it
    runs when asked for). A step that several FMBench names map to runs when any of them is enabled.
    """
    if not run_steps:
        return [s for s in STEPS if s != "evaluate"], []
    enabled: set[str] = set()
    notes: list[str] = []
    for name, on in run_steps.items():
        try:
            steps = normalise_step(name)
        except KeyError:
            notes.append(
                f"run_steps: {name!r} is not a step fmb knows (known: {', '.join(STEPS)} "
                "or FMBench's notebook names); ignored"
            )
            continue
        if steps is None:
            continue
        if on:
            enabled.update(steps)
    return [s for s in STEPS if s in enabled], notes
