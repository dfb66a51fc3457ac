"""Host telemetry: this machine's CPU, memory, NVIDIA GPUs and NeuronCores, sampled while collecting.

When `fmb collect` sends requests to a model server that fmb deployed on this host (an
endpoint of kind ``local`` or ``ec2``), a thread samples the host every
``telemetry.host_interval_s`` seconds (default 1) into ``raw/host_metrics``, one row per
reading in long format. The request event loop never waits for it.

Metric names (``metric``, with ``source``, ``device`` and ``unit``):

=====================================  =======  ==============  =======  =====================================
metric                                 source   device          unit     what
=====================================  =======  ==============  =======  =====================================
``cpu_percent``                        host     ``host``        percent  busy share of all CPUs (0 to 100)
``memory_used_bytes``                  host     ``host``        bytes    memory in use (psutil's ``used``)
``memory_available_bytes``             host     ``host``        bytes    memory a new process could get
``memory_total_bytes``                 host     ``host``        bytes    physical memory
``gpu_utilization_percent``            nvidia   GPU index       percent  time a kernel ran in the last period
``gpu_memory_used_bytes``              nvidia   GPU index       bytes    GPU memory in use
``gpu_memory_total_bytes``             nvidia   GPU index       bytes    GPU memory
``gpu_power_watts``                    nvidia   GPU index       watts    power draw
``neuroncore_utilization_percent``     neuron   core index      percent  NeuronCore busy share in the period
``neuroncore_memory_used_bytes``       neuron   core index      bytes    device memory held for the core
=====================================  =======  ==============  =======  =====================================

Sources: psutil for the host (``pip install 'fmb[ec2]'``), NVML through nvidia-ml-py for
NVIDIA GPUs, and ``neuron-monitor`` (when it is on PATH), which prints one JSON report
per period on stdout, for NeuronCores. A source that is missing or fails is left out
with a note; sampling never stops the collection.

Durability: the samples are written about once a second through
:class:`fmb.collector.sample_parts.SampleParts`; a killed collector loses at most the last
second of samples and leaves no half-written file, and no recovery step is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from fmb.collector.sample_parts import SampleParts
from fmb.collector.schemas import HOST_METRICS

if TYPE_CHECKING:
    from rich.console import Console

    from fmb.config import LoadedConfig
    from fmb.endpoints import Endpoint
    from fmb.paths import ResultsLayout

# metric -> (source, unit): the one list of metric names (the module docstring explains each).
METRICS: dict[str, tuple[str, str]] = {
    "cpu_percent": ("host", "percent"),
    "memory_used_bytes": ("host", "bytes"),
    "memory_available_bytes": ("host", "bytes"),
    "memory_total_bytes": ("host", "bytes"),
    "gpu_utilization_percent": ("nvidia", "percent"),
    "gpu_memory_used_bytes": ("nvidia", "bytes"),
    "gpu_memory_total_bytes": ("nvidia", "bytes"),
    "gpu_power_watts": ("nvidia", "watts"),
    "neuroncore_utilization_percent": ("neuron", "percent"),
    "neuroncore_memory_used_bytes": ("neuron", "bytes"),
}
_NVIDIA_METRICS = [m for m, (source, _) in METRICS.items() if source == "nvidia"]
# Endpoint kinds whose model server runs on this host.
ON_THIS_HOST = ("local", "ec2")
PIP_HINT = "pip install 'fmb[ec2]'"
FLUSH_EVERY_S = 1.0

# A reading: when, which device, which metric, its value.
Reading = tuple[datetime, str, str, float]


class Unavailable(Exception):
    """A source that cannot be sampled on this host; its message says why."""


class Probe(Protocol):
    source: str

    def read(self, now: datetime) -> list[Reading]: ...

    def close(self) -> None: ...


class HostProbe:
    """CPU and memory of the whole machine, through psutil."""

    source = "host"

    def __init__(self) -> None:
        try:
            import psutil
        except ImportError:
            raise Unavailable(f"host CPU and memory are not sampled: psutil is not installed ({PIP_HINT})") from None
        self._psutil = psutil
        psutil.cpu_percent(interval=None)  # the first call only starts the count

    def read(self, now: datetime) -> list[Reading]:
        cpu = self._psutil.cpu_percent(interval=None)
        memory = self._psutil.virtual_memory()
        return [
            (now, "host", "cpu_percent", float(cpu)),
            (now, "host", "memory_used_bytes", float(memory.used)),
            (now, "host", "memory_available_bytes", float(memory.available)),
            (now, "host", "memory_total_bytes", float(memory.total)),
        ]

    def close(self) -> None:
        pass


class NvidiaProbe:
    """Utilization, memory and power of each NVIDIA GPU, through NVML (nvidia-ml-py)."""

    source = "nvidia"

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError:
            raise Unavailable(f"NVIDIA GPUs are not sampled: nvidia-ml-py is not installed ({PIP_HINT})") from None
        self._nvml = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise Unavailable(f"no NVIDIA GPU is sampled: NVML is not available here ({exc})") from None
        try:
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except pynvml.NVMLError as exc:
            self.close()
            raise Unavailable(f"no NVIDIA GPU is sampled: NVML cannot list the GPUs ({exc})") from None
        if not self._handles:
            self.close()
            raise Unavailable("no NVIDIA GPU is sampled: NVML finds none")
        self._unsupported: set[tuple[int, str]] = set()  # (GPU, metric) that this GPU cannot report

    def _value(self, handle: Any, metric: str) -> float:
        nvml = self._nvml
        if metric == "gpu_utilization_percent":
            return float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        if metric == "gpu_memory_used_bytes":
            return float(nvml.nvmlDeviceGetMemoryInfo(handle).used)
        if metric == "gpu_memory_total_bytes":
            return float(nvml.nvmlDeviceGetMemoryInfo(handle).total)
        return nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0  # gpu_power_watts, from milliwatts

    def read(self, now: datetime) -> list[Reading]:
        readings: list[Reading] = []
        for index, handle in enumerate(self._handles):
            for metric in _NVIDIA_METRICS:
                if (index, metric) in self._unsupported:
                    continue
                try:
                    readings.append((now, str(index), metric, self._value(handle, metric)))
                except self._nvml.NVMLError_NotSupported:
                    self._unsupported.add((index, metric))
        return readings

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError:
            pass


def neuron_readings(report: dict[str, Any], now: datetime) -> list[Reading]:
    """The NeuronCore readings of one ``neuron-monitor`` report.

    Each Neuron runtime (process) lists every NeuronCore, with zeros for the cores it does
    not use, so a core's utilization and memory are the sums over the runtimes.
    """
    utilization: dict[str, float] = {}
    memory: dict[str, float] = {}
    for runtime in report.get("neuron_runtime_data") or []:
        data = runtime.get("report") or {}
        cores = (data.get("neuroncore_counters") or {}).get("neuroncores_in_use") or {}
        for core, counters in cores.items():
            value = (counters or {}).get("neuroncore_utilization")
            if isinstance(value, int | float):
                utilization[core] = utilization.get(core, 0.0) + float(value)
        used = (data.get("memory_used") or {}).get("neuron_runtime_used_bytes") or {}
        for core, parts in ((used.get("usage_breakdown") or {}).get("neuroncore_memory_usage") or {}).items():
            sizes = [v for v in (parts or {}).values() if isinstance(v, int | float)]
            memory[core] = memory.get(core, 0.0) + float(sum(sizes))
    readings: list[Reading] = [(now, core, "neuroncore_utilization_percent", v) for core, v in utilization.items()]
    readings += [(now, core, "neuroncore_memory_used_bytes", v) for core, v in memory.items()]
    return sorted(readings, key=lambda r: (r[2], int(r[1]) if r[1].isdigit() else r[1]))


class NeuronProbe:
    """NeuronCore utilization and memory from ``neuron-monitor``'s reports, read as they arrive."""

    source = "neuron"

    def __init__(self, interval_s: float) -> None:
        binary = shutil.which("neuron-monitor")
        if binary is None:
            raise Unavailable("no NeuronCore is sampled: neuron-monitor is not on PATH")
        config = {
            "period": f"{max(1, round(interval_s * 1000))}ms",
            "neuron_runtimes": [
                {"tag_filter": ".*", "metrics": [{"type": "neuroncore_counters"}, {"type": "memory_used"}]}
            ],
        }
        handle, name = tempfile.mkstemp(prefix="fmb-neuron-monitor-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(config, out)
        self._config = Path(name)
        try:
            self._proc = subprocess.Popen(
                [binary, "-c", name], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
        except OSError as exc:
            self._config.unlink(missing_ok=True)
            raise Unavailable(f"no NeuronCore is sampled: neuron-monitor does not start ({exc})") from None
        self._lock = threading.Lock()
        self._pending: list[Reading] = []
        self._reader = threading.Thread(target=self._read_reports, name="fmb-neuron-monitor", daemon=True)
        self._reader.start()

    def _read_reports(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                report = json.loads(line)
            except ValueError:
                continue  # not a report (a partial line at exit)
            if isinstance(report, dict):
                readings = neuron_readings(report, datetime.now(UTC))
                with self._lock:
                    self._pending.extend(readings)

    def read(self, now: datetime) -> list[Reading]:
        with self._lock:
            readings, self._pending = self._pending, []
        if not readings and self._proc.poll() is not None:
            self._reader.join(timeout=1)
            with self._lock:
                readings, self._pending = self._pending, []
            if not readings:
                raise RuntimeError(f"neuron-monitor exited with status {self._proc.returncode}")
        return readings

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._reader.join(timeout=5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._config.unlink(missing_ok=True)


def open_probes(interval_s: float) -> tuple[list[Probe], list[str]]:
    """Every source this host can be sampled with, and why each other one cannot."""
    probes: list[Probe] = []
    missing: list[str] = []
    for make in (HostProbe, NvidiaProbe, lambda: NeuronProbe(interval_s)):
        try:
            probes.append(make())
        except Unavailable as exc:
            missing.append(str(exc))
    return probes, missing


class HostTelemetry(AbstractContextManager["HostTelemetry"]):
    """Samples this host in a thread from ``start`` (or ``with``) to ``stop`` into ``directory``'s part files."""

    def __init__(
        self,
        directory: Path,
        run_id: str,
        interval_s: float = 1.0,
        *,
        note: Callable[[str], None] | None = None,
        rows_per_part: int = 20_000,
    ) -> None:
        self.directory = directory
        self.run_id = run_id
        self.interval_s = interval_s
        self.notes: list[str] = []
        self._on_note = note
        self._probes: list[Probe] = []
        self._host = socket.gethostname()
        self._parts = SampleParts(directory, HOST_METRICS, rows_per_part=rows_per_part, note=self.note)
        self._flushed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def rows_written(self) -> int:
        return self._parts.rows_written

    def note(self, text: str) -> None:
        self.notes.append(text)
        if self._on_note is not None:
            try:
                self._on_note(text)
            except Exception:  # a note never stops anything
                pass

    def start(self) -> None:
        self._probes, missing = open_probes(self.interval_s)
        if not self._probes:
            self.note("nothing is sampled: " + "; ".join(missing))
            return
        sampled = ", ".join(probe.source for probe in self._probes)
        self.note("; ".join([f"sampling {sampled} every {self.interval_s:g} s", *missing]))
        self._flushed_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="fmb-host-telemetry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 30)
            if self._thread.is_alive():  # stuck in a driver call: leave it (a daemon) and its rows
                self.note("the sampler did not stop within 30 s; its last samples are not written")
                return
            self._thread = None
        for probe in self._probes:
            self._close(probe)
        self._probes = []
        self._parts.flush()

    def __enter__(self) -> HostTelemetry:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        due = time.monotonic() + self.interval_s
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            try:
                self._sample()
                if time.monotonic() - self._flushed_at >= FLUSH_EVERY_S * 0.99:
                    self._flushed_at = time.monotonic()
                    self._parts.flush()
            except Exception as exc:  # never the collection's problem
                self.note(f"sampling stopped: {type(exc).__name__}: {exc}")
                return
            due += self.interval_s
            if due < time.monotonic():  # the machine was too busy: skip the ticks missed
                due = time.monotonic() + self.interval_s

    def _sample(self) -> None:
        now = datetime.now(UTC)
        readings: list[Reading] = []
        for probe in list(self._probes):
            try:
                readings.extend(probe.read(now))
            except Exception as exc:  # psutil, NVML and neuron-monitor fail in their own ways
                self.note(f"{probe.source} telemetry stopped: {type(exc).__name__}: {exc}")
                self._probes.remove(probe)
                self._close(probe)
        if readings:
            self._parts.add(self._rows(readings))

    def _rows(self, readings: Iterable[Reading]) -> list[dict[str, Any]]:
        return [
            {
                "run_id": self.run_id,
                "host": self._host,
                "sampled_at": at,
                "source": METRICS[metric][0],
                "device": device,
                "metric": metric,
                "value": value,
                "unit": METRICS[metric][1],
            }
            for at, device, metric, value in readings
        ]

    def _close(self, probe: Probe) -> None:
        try:
            probe.close()
        except Exception as exc:
            self.note(f"{probe.source} telemetry did not close cleanly: {type(exc).__name__}: {exc}")


def sampled_here(endpoints: dict[str, Endpoint], experiments: Iterable[str]) -> bool:
    """Whether any of ``experiments`` goes to a model server fmb deployed on this host."""
    return any(endpoints[name].kind in ON_THIS_HOST for name in experiments if name in endpoints)


def host_telemetry(
    loaded: LoadedConfig,
    layout: ResultsLayout,
    run_id: str,
    endpoints: dict[str, Endpoint],
    experiments: Iterable[str],
    *,
    console: Console | None = None,
    quiet: bool = False,
) -> AbstractContextManager[object]:
    """Sampling for the length of a `with` block when it applies (see :func:`sampled_here`), else nothing.

    The config's ``telemetry:`` section turns it off (``enabled: false``) or sets the
    interval (``host_interval_s``). Notes go to ``console`` unless ``quiet``.
    """
    from fmb.config.schema import Telemetry

    settings = loaded.config.telemetry or Telemetry()
    if not settings.enabled or not sampled_here(endpoints, experiments):
        return nullcontext()

    def note(text: str) -> None:
        if not quiet:
            from rich import get_console

            (console or get_console()).print(f"host telemetry: {text}", markup=False, highlight=False, soft_wrap=True)

    return HostTelemetry(layout.host_metrics_dir(run_id), run_id, settings.host_interval_s, note=note)
