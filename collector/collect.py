"""`fmb collect`: plan the cells of a config, run them, and record the run.

For every experiment, payload file and concurrency level (a cell), FMBench's rule sets
the number of requests: the payload file's prompts are taken in rounds of
``concurrency`` requests, with at least ``min_iters_per_combination`` and at most
``max_iters_per_combination`` rounds, so a cell has
``concurrency x clamp(ceil(prompts / concurrency), min_iters, max_iters)`` requests.
fmb sends them continuously (see :mod:`fmb.collector.runner`), not in rounds.
"""

from __future__ import annotations

import asyncio
import json
import math
import platform
import secrets
import signal
import socket
import sys
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fmb.collector.parquet_io import write_atomic
from fmb.prepare.payloads import prompt_id, prompt_row, tokenizer_candidates
from fmb.prepare.sources import read_jsonl
from fmb.prepare.tokens import TokenCounter, load_counter
from fmb.collector.progress import CellProgress
from fmb.collector.recovery import Recovered, RunLock, recover_abandoned
from fmb.collector.resume import Resumption, plan_resumption
from fmb.collector.runner import Cell, CellStats, Policy, RowMaker, run_cell
from fmb.collector.schemas import CELLS, EXPERIMENTS, PRICING, PROMPTS, RUNS
from fmb.collector.targets import make_target
from fmb.collector.targets.base import Request, Target
from fmb.collector.writer import RequestWriter
from rich.console import Console

from fmb import __version__
from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.errors import CollectError, FmbError, PrepareError
from fmb.paths import ResultsLayout
from fmb.pricing import load_prices, price_key_for
from fmb.redact import Redactor, redact_mapping


def requests_per_cell(prompts: int, concurrency: int, min_iters: int, max_iters: int) -> int:
    rounds = math.ceil(max(prompts, concurrency) / concurrency)
    return concurrency * min(max(rounds, min_iters), max_iters)


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


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
                hint="Payload files hold one {\"inputs\": \"<prompt>\"} object a line; `fmb prepare` writes them.",
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


@dataclass
class CellResult:
    cell: Cell
    requests: int
    errors: int
    p50_ms: float | None


@dataclass
class RunResult:
    run_id: str
    status: str
    rows: int = 0
    cells: list[CellResult] = field(default_factory=list)
    message: str | None = None
    recovered: list[Recovered] = field(default_factory=list)  # abandoned runs found and finished first
    resumed_requests: int | None = None  # with --resume: the missing requests sent


class RunRecorder:
    """Writes the runs, experiments and pricing rows of one run."""

    def __init__(self, loaded: LoadedConfig, layout: ResultsLayout, run_id: str) -> None:
        self.loaded = loaded
        self.layout = layout
        self.run_id = run_id
        self.started_at = datetime.now(UTC)
        self.recorded = False
        self.prices = load_prices(loaded.pricing_path) if loaded.pricing_path else []
        self.redact = loaded.redactor()
        self._lock = RunLock(layout, run_id)

    def lock(self, state: dict[str, Any]) -> None:
        """Hold the run's lock while collecting (see :mod:`fmb.collector.recovery`)."""
        if not self._lock.acquire(state):
            raise CollectError(f"run {self.run_id} is being collected by another fmb process.")

    def unlock(self) -> None:
        self._lock.release()

    def write_run(self, status: str, message: str | None = None, ended: bool = False) -> None:
        cfg = self.loaded.config
        row = {
            "run_id": self.run_id,
            "benchmark": self.loaded.name,
            "model_name": cfg.general.model_name,
            "title": self.redact(cfg.report.title),
            "config_path": str(self.loaded.path),
            "config_hash": self.loaded.config_hash,
            "config_json": json.dumps(self.loaded.redacted(), sort_keys=True),
            "fmb_version": __version__,
            "host": socket.gethostname(),
            "python_version": platform.python_version(),
            "started_at": self.started_at,
            "ended_at": datetime.now(UTC) if ended else None,
            "status": status,
            "status_message": self.redact(message),
            "dataset_of_interest": cfg.metrics.dataset_of_interest,
            "latency_budget_s": cfg.report.latency_budget,
            "cost_per_10k_txn_budget_usd": cfg.report.cost_per_10k_txn_budget,
            "error_rate_budget": cfg.report.error_rate_budget,
            "txn_count_for_showing_cost": cfg.report.txn_count_for_showing_cost,
        }
        write_atomic([row], RUNS, self.layout.run_table_dir("runs", self.run_id) / "run.parquet")
        self.recorded = True

    def write_experiments(self, plan: Plan, targets: dict[str, Target], deployed: dict[str, dict[str, Any]]) -> None:
        rows = []
        for exp in plan.experiments:
            spec = exp.spec
            info = deployed.get(exp.name, {}) if spec.deploy else {}
            rows.append(
                {
                    "run_id": self.run_id,
                    "experiment": exp.name,
                    "backend": exp.backend,
                    "endpoint": self.redact(targets[exp.name].describe()),
                    "model_id": spec.model_id,
                    "model_name": spec.model_name,
                    "instance_type": spec.instance_type,
                    "price_key": price_key_for(self.prices, spec.instance_type),
                    "instance_count": exp.instance_count,
                    "region": spec.region or self.loaded.config.aws.region,
                    "deployed": bool(info),
                    "deployment_script": spec.deployment_script,
                    "inference_script": spec.inference_script,
                    "image_uri": spec.image_uri,
                    "stream": targets[exp.name].stream,
                    "parameter_set": spec.inference_spec.parameter_set,
                    "inference_parameters_json": json.dumps(redact_mapping(exp.parameters, self.redact), sort_keys=True,
                                                            default=str),
                    "deploy_seconds": info.get("deploy_seconds"),
                }
            )
        write_atomic(rows, EXPERIMENTS, self.layout.run_table_dir("experiments", self.run_id) / "experiments.parquet")

    def write_cells(self, plan: Plan) -> None:
        """The planned cells and their request counts, so that a cut-short cell can be told apart."""
        rows = [
            {"run_id": self.run_id, "experiment": c.experiment, "payload_file": c.payload_file,
             "concurrency": c.concurrency, "planned_requests": c.requests, "warmup_requests": c.warmup}
            for cells in plan.cells.values()
            for c in cells
        ]
        write_atomic(rows, CELLS, self.layout.run_table_dir("cells", self.run_id) / "cells.parquet")

    def write_pricing(self) -> None:
        """The prices in force for the run (an empty table when the config has none)."""
        path = self.loaded.pricing_path
        rows = [{"run_id": self.run_id, "source": str(path), **price.__dict__} for price in self.prices]
        write_atomic(rows, PRICING, self.layout.run_table_dir("pricing", self.run_id) / "pricing.parquet")

    def ensure_prompts(self, plan: Plan, counter: TokenCounter) -> None:
        """Record the run's prompts when the payload files were not written by `fmb prepare`."""
        target = self.layout.prompts_dir(self.loaded.name) / "prompts.parquet"
        if target.is_file():
            return
        now = datetime.now(UTC)
        rows = [
            prompt_row(self.loaded.name, payload_file, request.prompt, counter.count(request.prompt), counter.name,
                       source_file=payload_file, record_id=f"{payload_file}:{line}", prepared_at=now)
            for payload_file, requests in plan.prompts.items()
            for line, request in enumerate(requests, start=1)
        ]
        write_atomic(rows, PROMPTS, target)


def _targets(loaded: LoadedConfig, plan: Plan) -> dict[str, Target]:
    from botocore.exceptions import BotoCoreError

    targets = {}
    for exp in plan.experiments:
        try:
            targets[exp.name] = make_target(exp, loaded, max_connections=max(exp.spec.concurrency_levels))
        except BotoCoreError as exc:  # e.g. a profile given with -A aws_profile that does not exist
            raise CollectError(f"experiment {exp.name!r}: cannot set up the AWS client ({exc}).") from None
    return targets


async def _run_experiments(
    loaded: LoadedConfig,
    plan: Plan,
    layout: ResultsLayout,
    recorder: RunRecorder,
    progress: CellProgress,
    result: RunResult,
    deployed: dict[str, dict[str, Any]],
    resumption: Resumption | None,
) -> None:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    if main is not None:
        try:
            loop.add_signal_handler(signal.SIGTERM, main.cancel)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            pass
    counter, _ = load_counter(tokenizer_candidates(loaded))
    redact = recorder.redact
    session = resumption.session if resumption else 0
    targets: dict[str, Target] = {}
    try:
        targets = _targets(loaded, plan)
        for target in targets.values():
            await target.check_reachable()
        recorder.lock({"tokenizer": str(getattr(counter, "path", "") or "") or None})
        if resumption is None:
            recorder.write_experiments(plan, targets, deployed)
            recorder.write_cells(plan)
            recorder.write_pricing()
            recorder.ensure_prompts(plan, counter)
        recorder.write_run("running")
        for exp in plan.experiments:
            cells = plan.cells[exp.name]
            if resumption is not None:
                cells = [c for c in cells if c in resumption.missing]
                if not cells:
                    continue
            rows = RowMaker(recorder.run_id, targets[exp.name].stream, counter, redact, session)
            writer = RequestWriter(layout.requests_dir(exp.name, recorder.run_id), complete=rows.complete)
            policy = Policy(exp.spec.request_timeout_s, exp.spec.max_attempts, exp.spec.retry_backoff_s)
            try:
                for cell in cells:
                    missing = resumption.missing[cell] if resumption else None
                    stats = CellStats()
                    progress.start_cell(cell if missing is None else replace(cell, requests=len(missing)), stats)

                    def sink(row: dict[str, Any], stats: CellStats = stats, writer: RequestWriter = writer) -> None:
                        writer.add(row)
                        progress.update(stats)

                    warmup = resumption is None or cell not in resumption.warmed_up
                    try:
                        await run_cell(targets[exp.name], cell, plan.prompts[cell.payload_file], rows, sink,
                                       policy, stats, missing, warmup)
                    finally:
                        progress.update(stats)
                        result.cells.append(CellResult(cell, stats.done, stats.errors, stats.p50_ms()))
                    writer.flush()  # between cells nothing is in flight: make the cell's rows durable
            finally:
                writer.close()
                result.rows += writer.rows_written
    finally:
        for target in targets.values():
            await target.close()


def with_deployments(loaded: LoadedConfig, layout: ResultsLayout, only: tuple[str, ...]) -> tuple[LoadedConfig, dict]:
    """The config with the endpoints fmb deployed filled in, and what was deployed.

    An experiment with `deploy: yes` must have a running deployment (from `fmb deploy` or
    `fmb run`); its URL or endpoint name comes from the deployment record.
    """
    from fmb import deployers

    deployed = deployers.endpoints(loaded, layout.root)
    missing = deployers.missing_deployments(loaded, layout.root, only)
    if missing:
        raise CollectError(
            f"experiment(s) {', '.join(missing)} have deploy: yes but nothing fmb deployed for them is running.",
            hint="Stand them up with `fmb deploy CONFIG` (and remove them later with `fmb cleanup CONFIG`), "
            "or use `fmb run CONFIG`, which does both; or set deploy: no and give ep_name/endpoint_url.",
        )
    experiments = [
        replace(e, endpoint=_deployed_endpoint(e, deployed[e.name]["endpoint"]))
        if e.spec.deploy and e.name in deployed else e
        for e in loaded.experiments
    ]
    return replace(loaded, experiments=experiments), deployed


def _deployed_endpoint(exp: ResolvedExperiment, recorded: str) -> str:
    """The recorded endpoint, or the configured URL when the record holds it with its userinfo masked."""
    configured = exp.spec.endpoint_url
    if configured and recorded == Redactor()(configured):
        return configured
    return recorded


def collect(
    loaded: LoadedConfig,
    layout: ResultsLayout,
    *,
    quiet: bool = False,
    only: tuple[str, ...] = (),
    console: Console | None = None,
    resume: str | None = None,
) -> RunResult:
    """Run every cell of the config and record the run; rows already written are never lost.

    Runs of earlier collectors that were killed are finished first (see
    :mod:`fmb.collector.recovery`). With ``resume``, only the missing requests of that run's
    cells are sent, into the same run.
    """
    recovered = recover_abandoned(layout)
    loaded, deployed = with_deployments(loaded, layout, only)
    plan = make_plan(loaded, layout, only)
    resumption = plan_resumption(loaded, layout, resume, plan.cells) if resume else None
    recorder = RunRecorder(loaded, layout, resume or new_run_id())
    result = RunResult(recorder.run_id, "running", recovered=recovered)
    if resumption is not None:
        recorder.started_at = resumption.run["started_at"]
        result.resumed_requests = resumption.requests
        if not resumption.missing:
            result.status = resumption.run["status"]
            result.message = "nothing to resume: every planned request of the run has a row"
            return result
    sigterm = signal.getsignal(signal.SIGTERM)
    switch = sys.getswitchinterval()
    # The writer thread gives the GIL back to the event loop within 1 ms instead of 5.
    sys.setswitchinterval(0.001)
    try:
        cells = [c for cs in plan.cells.values() for c in cs if resumption is None or c in resumption.missing]
        requests = sum(len(resumption.missing[c]) if resumption else c.requests for c in cells)
        with CellProgress(quiet, console, total_cells=len(cells), total_requests=requests) as progress:
            asyncio.run(_run_experiments(loaded, plan, layout, recorder, progress, result, deployed, resumption))
    except BaseExceptionGroup as group:  # an error inside the runner's task group
        first = group.exceptions[0]
        if recorder.recorded:
            recorder.write_run("failed", f"{type(first).__name__}: {first}", ended=True)
        raise first from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        result.status, result.message = "interrupted", "stopped by the user (Ctrl-C or SIGTERM)"
        recorder.write_run(result.status, result.message, ended=True)
    except FmbError as exc:
        if not recorder.recorded:
            raise  # nothing was sent (e.g. an unreachable endpoint): there is no run to record
        recorder.write_run("failed", exc.message, ended=True)
        raise
    except Exception as exc:
        if recorder.recorded:
            recorder.write_run("failed", f"{type(exc).__name__}: {exc}", ended=True)
        raise
    else:
        result.status = "completed"
        recorder.write_run(result.status, result.message, ended=True)
    finally:
        recorder.unlock()  # only once the run's end is recorded: a free lock on a running run means abandoned
        sys.setswitchinterval(switch)
        signal.signal(signal.SIGTERM, sigterm)  # asyncio.run leaves the default handler behind
    return result
