"""The cells of a collection: which (experiment, payload file, concurrency) to run, how often.

For every experiment, payload file and concurrency level (a cell), FMBench's rule sets
the number of requests: the payload file's prompts are taken in rounds of
``concurrency`` requests, with at least ``min_iters_per_combination`` and at most
``max_iters_per_combination`` rounds, so a cell has
``concurrency x clamp(ceil(prompts / concurrency), min_iters, max_iters)`` requests.
fmb sends them continuously (see :mod:`fmb.collector.runner`), not in rounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from fmb.collector.runner import Cell
from fmb.collector.targets.base import Request
from fmb.config import LoadedConfig, ResolvedExperiment
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


def make_plan(loaded: LoadedConfig, layout: ResultsLayout, only: tuple[str, ...] = ()) -> Plan:
    """The cells to run; every payload file must exist and parse."""
    names = {e.name for e in loaded.experiments}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise CollectError(
            f"--experiment {', '.join(unknown)}: no such experiment in {loaded.path}.",
            hint=f"Experiments: {', '.join(sorted(names))}.",
        )
    experiments = [e for e in loaded.experiments if not only or e.name in only]
    payload_dir = layout.payload_dir(loaded.name)
    missing = sorted({pf for e in experiments for pf in e.spec.payload_files if not (payload_dir / pf).is_file()})
    if missing:
        raise CollectError(
            f"payload file(s) not found in {payload_dir}: {', '.join(missing)}.",
            hint="Run `fmb prepare CONFIG` first; a filter that matched no prompt writes no file "
            "(fmb prepare lists them), so also check the datasets.filters and the experiments' payload_files.",
        )
    prompts = {pf: load_payload(payload_dir / pf) for e in experiments for pf in e.spec.payload_files}
    ds = loaded.config.datasets
    cells = {
        e.name: [
            Cell(
                e.name,
                pf,
                c,
                requests_per_cell(len(prompts[pf]), c, ds.min_iters_per_combination, ds.max_iters_per_combination),
                e.spec.warmup_requests,
            )
            for pf in e.spec.payload_files
            for c in e.spec.concurrency_levels
        ]
        for e in experiments
    }
    return Plan(experiments, cells, prompts)
