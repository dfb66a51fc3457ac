"""The client machine a run was collected on: what it is and how busy it was.

Standard library only. Every figure is None where the platform cannot give it (for
example no load average on Windows): a missing value stays missing, never 0.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HostInfo:
    """What the client machine is; read once per run."""

    host: str
    cpu_model: str | None
    logical_cores: int | None
    memory_bytes: int | None
    os: str
    python_version: str


def _cpu_model() -> str | None:
    cpuinfo = Path("/proc/cpuinfo")
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def host_info() -> HostInfo:
    return HostInfo(
        host=socket.gethostname(),
        cpu_model=_cpu_model(),
        logical_cores=os.cpu_count(),
        memory_bytes=_memory_bytes(),
        os=platform.platform(),
        python_version=platform.python_version(),
    )


def load_average_1m() -> float | None:
    """The machine's 1-minute load average now (None where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def process_cpu_s() -> float:
    """CPU seconds (user + system, every thread) this process has used so far."""
    return time.process_time()


def busy_thresholds() -> tuple[float, float]:
    """The busy rule's limits, read from the dbt vars that the runs mart applies (one place for both)."""
    import yaml

    from fmb.paths import DBT_PROJECT_DIR

    found = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8"))["vars"]
    return float(found["client_busy_load_per_core"]), float(found["client_busy_cpu_share"])


def busy_reasons(
    cores: int | None, load_before: float | None, load_after: float | None, cpu_share: float | None
) -> list[str]:
    """Why the client machine counts as busy (the rule of the runs mart's is_client_busy); empty when it was not."""
    load_per_core, cpu_limit = busy_thresholds()
    reasons = []
    for when, load in (("before", load_before), ("after", load_after)):
        if load is not None and cores and load > load_per_core * cores:
            reasons.append(
                f"1-minute load average {load:.2f} {when} the run on {cores} logical cores "
                f"(above {load_per_core:g} per core)"
            )
    if cpu_share is not None and cpu_share >= cpu_limit:
        reasons.append(f"fmb itself used {cpu_share:.0%} of one core over the run (at least {cpu_limit:.0%})")
    return reasons
