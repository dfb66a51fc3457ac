"""Endpoint APIs behind one seam: :class:`~fmb.collector.targets.base.Target`."""

from __future__ import annotations

import importlib

from fmb.collector.targets.base import Target
from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.config.backends import BACKENDS
from fmb.errors import CollectError


def target_class(backend: str) -> type[Target]:
    """The target class registered for a back-end id (see :data:`fmb.config.backends.BACKENDS`)."""
    entry = BACKENDS.get(backend)
    if entry is None:
        raise CollectError(f"no collector target for back end {backend!r}; fmb knows {', '.join(sorted(BACKENDS))}.")
    module, _, name = entry.target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Target)):
        raise TypeError(f"{entry.target} is not a Target")
    return cls


def make_target(exp: ResolvedExperiment, loaded: LoadedConfig, max_connections: int) -> Target:
    """The target for an experiment's back end."""
    return target_class(exp.backend).for_experiment(exp, loaded, max_connections)
