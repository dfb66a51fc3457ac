"""The cells of a collection: which (experiment, payload file, concurrency) to run, how often.

For every experiment, payload file and concurrency level (a cell), FMBench's rule sets
the number of requests: the payload file's prompts are taken in rounds of
``concurrency`` requests, with at least ``min_iters_per_combination`` and at most
``max_iters_per_combination`` rounds, so a cell has
``concurrency x clamp(ceil(prompts / concurrency), min_iters, max_iters)`` requests.
fmb sends them continuously (see :mod:`fmb.collector.runner`), not in rounds, unless the
experiment asks for FMBench's waves (``load.mode: waves``).

An open-loop experiment (``load.mode`` constant, poisson or gamma) runs one experiment per
rate in ``load.rates``, and a trace experiment one per speed-up, named
``<name>@<rate>rps`` and ``<name>@trace-x<speed-up>`` (:func:`load_levels`): each level is
an option of its own in the marts (its latency, throughput and cost at that load), with
one cell per payload file whose ``concurrency`` is the cap on requests in flight. Its
arrival times are computed here, before anything is sent (:mod:`fmb.collector.arrivals`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from fmb.collector.arrivals import Schedule, level_seed, open_loop, read_trace
from fmb.collector.runner import Cell
from fmb.collector.targets.base import Request
from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.config.schema import OPEN_LOOP_MODES
from fmb.errors import CollectError, PrepareError
from fmb.paths import ResultsLayout
from fmb.prepare.payloads import prompt_id
from fmb.prepare.sources import read_jsonl


def requests_per_cell(prompts: int, concurrency: int, min_iters: int, max_iters: int) -> int:
    rounds = math.ceil(max(prompts, concurrency) / concurrency)
    return concurrency * min(max(rounds, min_iters), max_iters)


def load_payload(path: Path) -> list[Request]:
    """The prompts of an FMBench payload file ({"inputs": ...} a line)."""
    try:
        lines = read_jsonl(path)
    except PrepareError as exc:
        raise CollectError(f"bad payload file: {exc.message}", hint=exc.hint) from None
    requests = []
    for number, line in enumerate(lines, start=1):
        prompt = line.get("inputs")
        if not isinstance(prompt, str):
            raise CollectError(
                f"bad payload file: {path} line {number} has no text under 'inputs' "
                f"(keys: {', '.join(sorted(line)) or 'none'}).",
                hint='Payload files hold one {"inputs": "<prompt>"} object a line; `fmb prepare` writes them.',
            )
        requests.append(Request(prompt_id(prompt), prompt, line))
    if not requests:
        raise CollectError(f"payload file {path} is empty.", hint="Run `fmb prepare CONFIG` to write it again.")
    return requests


@dataclass
class Plan:
    experiments: list[ResolvedExperiment]
    cells: dict[str, list[Cell]]
    prompts: dict[str, list[Request]]


def level_name(name: str, mode: str, level: float) -> str:
    return f"{name}@trace-x{level:g}" if mode == "trace" else f"{name}@{level:g}rps"


def load_levels(experiments: list[ResolvedExperiment]) -> list[ResolvedExperiment]:
    """Each open-loop experiment as one experiment per rate, each trace experiment as one per speed-up."""
    out = []
    for exp in experiments:
        load = exp.spec.load
        if exp.level is not None or not load.is_open:
            out.append(exp)
            continue
        levels = load.rates if load.mode in OPEN_LOOP_MODES else load.trace_speedups
        for level in sorted(levels) if load.stop_past_knee else levels:
            spec = exp.spec.model_copy(update={"name": level_name(exp.name, load.mode, level)})
            out.append(replace(exp, spec=spec, config_name=exp.name, level=level))
    return out


def _trace_path(loaded: LoadedConfig, exp: ResolvedExperiment) -> Path:
    """load.trace_file: absolute, or relative to the config's folder, else to the read folder."""
    name = exp.spec.load.trace_file or ""
    path = Path(name).expanduser()
    if path.is_absolute():
        return path
    for root in (loaded.path.parent, loaded.read_root):
        if (root / path).is_file():
            return root / path
    raise CollectError(
        f"{exp.key}.load.trace_file: {name} not found next to {loaded.shown_path} or in {loaded.read_root}.",
        hint="Give the trace file's path, absolute or relative to the config file.",
    )


def plan_cell(
    loaded: LoadedConfig, exp: ResolvedExperiment, payload_file: str, prompts: int, concurrency: int | None
) -> Cell:
    """A cell of ``exp``: closed loop or waves at ``concurrency``, or a load level's schedule."""
    ds = loaded.config.datasets
    load = exp.spec.load
    widest = concurrency or max(exp.spec.concurrency_levels)
    count = requests_per_cell(prompts, widest, ds.min_iters_per_combination, ds.max_iters_per_combination)
    if not load.is_open:
        return Cell(exp.name, payload_file, widest, count, exp.spec.warmup_requests, load.mode)
    assert exp.level is not None
    schedule: Schedule
    if load.mode == "trace":
        trace = read_trace(_trace_path(loaded, exp))
        schedule = Schedule(
            tuple(t.offset_s / exp.level for t in trace),
            0,
            tuple(t.input_length for t in trace),
            tuple(t.output_length for t in trace),
        )
    else:
        schedule = open_loop(
            load.mode,
            exp.level,
            seed=level_seed(load.seed, exp.base_name, payload_file, exp.level),
            burstiness=load.burstiness,
            requests=None if load.duration_s is not None else (load.requests or count),
            duration_s=load.duration_s,
            ramp_up_s=load.ramp_up_s,
        )
    if schedule.requests < 1:
        raise CollectError(
            f"{exp.key}.load: level {exp.name} schedules no measured request in {payload_file}.",
            hint="Raise load.duration_s or the rate.",
        )
    cap = load.max_in_flight or len(schedule.offsets)
    return Cell(exp.name, payload_file, cap, schedule.requests, schedule.warmup, load.mode, schedule)


def make_plan(loaded: LoadedConfig, layout: ResultsLayout, only: tuple[str, ...] = ()) -> Plan:
    """The cells to run; every payload file must exist and parse.

    ``loaded``'s experiments are expected with their load levels (:func:`load_levels`); ``only``
    names experiments as the config does.
    """
    names = {e.base_name for e in loaded.experiments}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise CollectError(
            f"--experiment {', '.join(unknown)}: no such experiment in {loaded.path}.",
            hint=f"Experiments: {', '.join(sorted(names))}.",
        )
    experiments = [e for e in loaded.experiments if not only or e.base_name in only]
    payload_dir = layout.payload_dir(loaded.name)
    missing = sorted({pf for e in experiments for pf in e.spec.payload_files if not (payload_dir / pf).is_file()})
    if missing:
        raise CollectError(
            f"payload file(s) not found in {payload_dir}: {', '.join(missing)}.",
            hint="Run `fmb prepare CONFIG` first; a filter that matched no prompt writes no file "
            "(fmb prepare lists them), so also check the datasets.filters and the experiments' payload_files.",
        )
    prompts = {pf: load_payload(payload_dir / pf) for e in experiments for pf in e.spec.payload_files}
    cells = {
        e.name: [
            plan_cell(loaded, e, pf, len(prompts[pf]), c)
            for pf in e.spec.payload_files
            for c in (
                [None]
                if e.spec.load.is_open
                else sorted(e.spec.concurrency_levels)
                if e.spec.load.stop_past_knee
                else e.spec.concurrency_levels
            )
        ]
        for e in experiments
    }
    return Plan(experiments, cells, prompts)
