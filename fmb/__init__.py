"""fmb: benchmark LLM inference endpoints for price and performance."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fmb")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
