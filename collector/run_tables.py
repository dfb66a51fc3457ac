"""The run's own tables: runs, experiments, planned cells, pricing and prompts.

One :class:`RunRecorder` per run writes them (each file atomically) and holds the run's
lock while it is being collected. In a sharded run (`fmb collect --shard I/N`) each
shard's recorder holds its own lock and writes its own row of the runs table
(``run-shard-I-of-N.parquet``); the experiments, cells, pricing and prompts tables are the
run's plan, the same whichever shard writes them, so every shard writes them whole under
the same names (the last write wins; no shard's rows are lost).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from fmb import __version__
from fmb.collector.host import busy_reasons, host_info, load_average_1m, process_cpu_s
from fmb.collector.parquet_io import write_atomic
from fmb.collector.plan import Plan
from fmb.collector.recovery import RunLock, run_path
from fmb.collector.runner import Cell
from fmb.collector.schemas import CELLS, EXPERIMENTS, PRICING, PROMPTS, RUNS, RunStatus
from fmb.collector.shard import WHOLE, Shard
from fmb.collector.targets.base import Target
from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.config.schema import OPEN_LOOP_MODES
from fmb.endpoints import Endpoint
from fmb.errors import CollectError
from fmb.paths import ResultsLayout
from fmb.prepare.payloads import prompt_row
from fmb.prepare.tokens import TokenCounter
from fmb.pricing import load_prices
from fmb.redact import redact_mapping


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _load_columns(exp: ResolvedExperiment, plan: Plan) -> dict[str, Any]:
    """How an experiment's requests were sent (see fmb.config.schema.Load and fmb.collector.plan.load_levels)."""
    load = exp.spec.load
    rate = exp.level if load.mode in OPEN_LOOP_MODES else None
    if load.mode == "trace" and exp.level is not None:
        # The trace's mean arrival rate at this speed-up: requests over the span of their due times.
        schedules = [c.schedule for c in plan.cells.get(exp.name, []) if c.schedule is not None]
        if schedules and len(schedules[0].offsets) > 1 and schedules[0].offsets[-1] > 0:
            offsets = schedules[0].offsets
            rate = (len(offsets) - 1) / (offsets[-1] - offsets[0])
    return {
        "config_experiment": exp.base_name,
        "load_mode": load.mode,
        "request_rate_per_s": rate,
        "burstiness": load.burstiness if load.mode == "gamma" else None,
        "trace_speedup": exp.level if load.mode == "trace" else None,
        "max_in_flight": load.max_in_flight if load.is_open else None,
        "ramp_up_s": load.ramp_up_s if load.mode in OPEN_LOOP_MODES else None,
        "arrival_seed": load.seed if load.mode in OPEN_LOOP_MODES else None,
        "lateness_threshold_ms": load.lateness_threshold_ms if load.is_open else None,
        "knee_min_throughput_gain": load.knee_min_throughput_gain,
        "knee_min_slo_attainment": load.knee_min_slo_attainment,
        "slo_ttft_ms": exp.spec.slo.ttft_ms,
        "slo_tpot_ms": exp.spec.slo.tpot_ms,
        "slo_e2e_latency_ms": exp.spec.slo.e2e_latency_ms,
    }


class RunRecorder:
    """Writes the runs, experiments and pricing rows of one run."""

    def __init__(
        self,
        loaded: LoadedConfig,
        layout: ResultsLayout,
        run_id: str,
        *,
        run_group: str | None = None,
        repeat_index: int = 1,
        shard: Shard = WHOLE,
    ) -> None:
        self.loaded = loaded
        self.shard = shard
        self.layout = layout
        self.run_id = run_id
        self.run_group = run_group or run_id
        self.repeat_index = repeat_index
        self.started_at = datetime.now(UTC)
        self.host = host_info()
        self._cpu_s_at_start = process_cpu_s()
        self._load_before: float | None = None
        self.last_row: dict[str, Any] | None = None  # the run's row as last written
        self.recorded = False
        self.prices = load_prices(loaded.pricing_path) if loaded.pricing_path else []
        self.redact = loaded.redactor()
        self._lock = RunLock(layout, run_id, shard)

    def lock(self, state: dict[str, Any]) -> None:
        """Hold the run's lock while collecting (see :mod:`fmb.collector.recovery`)."""
        if not self._lock.acquire(state):
            which = "" if self.shard.is_whole else f"shard {self.shard.label} of "
            raise CollectError(f"{which}run {self.run_id} is being collected by another fmb process.")

    def unlock(self) -> None:
        self._lock.release()

    def write_run(self, status: RunStatus, message: str | None = None, ended: bool = False) -> None:
        """The run's row: the 'before' load average at the first write, the 'after' figures at the end."""
        cfg = self.loaded.config
        if not self.recorded:
            self._load_before = load_average_1m()
        row = {
            "run_id": self.run_id,
            "benchmark": self.loaded.name,
            "model_name": cfg.general.model_name,
            "title": self.redact(cfg.report.title),
            "config_path": str(self.loaded.path),
            "config_hash": self.loaded.config_hash,
            "config_json": json.dumps(self.loaded.redacted(), sort_keys=True),
            "fmb_version": __version__,
            "host": self.host.host,
            "python_version": self.host.python_version,
            "started_at": self.started_at,
            "ended_at": datetime.now(UTC) if ended else None,
            "status": status,
            "status_message": self.redact(message),
            "dataset_of_interest": cfg.metrics.dataset_of_interest,
            "latency_budget_s": cfg.report.latency_budget,
            "cost_per_10k_txn_budget_usd": cfg.report.cost_per_10k_txn_budget,
            "error_rate_budget": cfg.report.error_rate_budget,
            "selection": cfg.report.selection,
            "min_requests_for_best": cfg.report.min_requests_for_best,
            "txn_count_for_showing_cost": cfg.report.txn_count_for_showing_cost,
            "run_group": self.run_group,
            "repeat_index": self.repeat_index,
            "shard": self.shard.index,
            "shard_count": self.shard.count,
            "client_cpu_model": self.host.cpu_model,
            "client_logical_cores": self.host.logical_cores,
            "client_memory_bytes": self.host.memory_bytes,
            "client_os": self.host.os,
            "client_load_1m_before": self._load_before,
            "client_load_1m_after": load_average_1m() if ended else None,
            "client_process_cpu_s": process_cpu_s() - self._cpu_s_at_start if ended else None,
        }
        write_atomic([row], RUNS, run_path(self.layout, self.run_id, self.shard))
        self.recorded = True
        self.last_row = row

    def busy_reasons(self) -> list[str]:
        """Why the client machine was busy during the run, once its end is recorded (see the runs mart)."""
        row = self.last_row
        if row is None or row["ended_at"] is None:
            return []
        seconds = (row["ended_at"] - row["started_at"]).total_seconds()
        share = row["client_process_cpu_s"] / seconds if seconds > 0 else None
        return busy_reasons(
            row["client_logical_cores"], row["client_load_1m_before"], row["client_load_1m_after"], share
        )

    def write_experiments(self, plan: Plan, targets: dict[str, Target], endpoints: dict[str, Endpoint]) -> None:
        rows = []
        for exp in plan.experiments:
            spec = exp.spec
            endpoint = endpoints.get(exp.name, Endpoint(exp.endpoint))
            target = targets.get(exp.name)  # none yet for an experiment deployed when its cells start
            where = target.describe() if target is not None else "(deployed when its cells start)"
            rows.append(
                {
                    "run_id": self.run_id,
                    "experiment": exp.name,
                    "backend": exp.backend,
                    "endpoint": self.redact(where),
                    "model_id": spec.model_id,
                    "model_name": spec.model_name,
                    "instance_type": spec.instance_type,
                    "instance_count": exp.instance_count,
                    "region": spec.region or self.loaded.config.aws.region,
                    "deployed": endpoint.deployed_by_fmb,
                    "deployment_script": spec.deployment_script,
                    "inference_script": spec.inference_script,
                    "image_uri": spec.image_uri,
                    "stream": target.stream if target is not None else exp.stream,
                    "parameter_set": spec.inference_spec.parameter_set,
                    "inference_parameters_json": json.dumps(
                        redact_mapping(exp.parameters, self.redact), sort_keys=True, default=str
                    ),
                    "deploy_seconds": endpoint.deploy_seconds,
                    **_load_columns(exp, plan),
                }
            )
        write_atomic(rows, EXPERIMENTS, self.layout.run_table_dir("experiments", self.run_id) / "experiments.parquet")

    def write_cells(self, plan: Plan, skipped: dict[Cell, str] | None = None) -> None:
        """The planned cells and their request counts, so that a cut-short cell can be told apart; ``skipped``
        are the cells a sweep left out, and why (written again each time it grows)."""
        skipped = skipped or {}
        rows = [
            {
                "run_id": self.run_id,
                "experiment": c.experiment,
                "payload_file": c.payload_file,
                "concurrency": c.concurrency,
                "planned_requests": c.requests,
                "warmup_requests": c.warmup,
                "skip_reason": skipped.get(c),
            }
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
            prompt_row(
                self.loaded.name,
                payload_file,
                request.prompt,
                counter.count(request.prompt),
                counter.name,
                source_file=payload_file,
                record_id=f"{payload_file}:{line}",
                prepared_at=now,
            )
            for payload_file, requests in plan.prompts.items()
            for line, request in enumerate(requests, start=1)
        ]
        write_atomic(rows, PROMPTS, target)
