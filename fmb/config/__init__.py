"""FMBench-compatible configuration: schema, placeholders, loading."""

from fmb.config.loader import LoadedConfig, ResolvedExperiment, load_config

__all__ = ["LoadedConfig", "ResolvedExperiment", "load_config"]
