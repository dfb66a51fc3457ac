"""Synthetic raw tables for the benchmarks, in the collector's schemas, written with its Parquet writer.

One run has 4 experiments, 5 payload files and 6 concurrency levels (120 cells).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from fmb.collector.parquet_io import write_atomic
from fmb.collector.schemas import CELLS, EXPERIMENTS, PRICING, PROMPTS, REQUESTS, RUNS
from fmb.paths import ResultsLayout

EXPERIMENTS_ = [
    ("g5-xl", "ml.g5.xlarge", 1.4084),
    ("g5-2xl", "ml.g5.2xlarge", 1.515),
    ("g6-2xl", "ml.g6.2xlarge", 1.222),
    ("p4d", "ml.p4d.24xlarge", 37.688),
]
PAYLOADS = [f"payload_en_{a}-{b}.jsonl" for a, b in ((1, 500), (500, 1000), (1000, 2000), (2000, 3000), (3000, 4000))]
CONCURRENCY = [1, 2, 4, 8, 16, 32]


def requests_table(run_id: str, experiment: str, rows: int, rng: np.random.Generator, t0: float) -> pa.Table:
    cell = rows // (len(PAYLOADS) * len(CONCURRENCY))
    payload = np.repeat(np.arange(len(PAYLOADS)), len(CONCURRENCY) * cell)
    conc = np.tile(np.repeat(np.array(CONCURRENCY, dtype=np.int32), cell), len(PAYLOADS))
    n = len(payload)
    ttft = rng.uniform(20, 200, n)
    e2e = ttft + rng.gamma(4.0, 300.0, n)  # a response ends after its first token: ttft <= ttlt <= e2e
    ttlt = ttft + (e2e - ttft) * 0.98
    status = rng.choice(np.array(["ok", "error", "timeout", "throttled"]), n, p=[0.97, 0.01, 0.01, 0.01])
    ok = status == "ok"
    start_us = (t0 * 1e6 + np.arange(n) * 1000 + rng.uniform(0, 500, n)).astype("int64")
    end_us = start_us + (e2e * 1000).astype("int64")
    prompt = rng.integers(1, 4000, n).astype(np.int32)
    completion = rng.integers(1, 512, n).astype(np.int32)
    nulls = pa.nulls(n)
    columns = {
        "run_id": pa.array(np.full(n, run_id)),
        "experiment": pa.array(np.full(n, experiment)),
        "payload_file": pa.array(np.array(PAYLOADS)[payload]),
        "concurrency": pa.array(conc),
        "request_index": pa.array(np.arange(n, dtype=np.int64)),
        "worker": pa.array(np.zeros(n, dtype=np.int32)),
        "prompt_id": pa.array(np.char.add("p", (np.arange(n) % 1000).astype(str))),
        "is_warmup": pa.array(np.zeros(n, dtype=bool)),
        "session": pa.array(np.zeros(n, dtype=np.int32)),
        "attempts": pa.array(np.ones(n, dtype=np.int32)),
        "started_at": pa.array(start_us, pa.timestamp("us", tz="UTC")),
        "ended_at": pa.array(end_us, pa.timestamp("us", tz="UTC")),
        "ttft_ms": pa.array(np.where(ok, ttft, np.nan), from_pandas=True),
        "ttlt_ms": pa.array(np.where(ok, ttlt, np.nan), from_pandas=True),
        "e2e_latency_ms": pa.array(e2e),
        "prompt_tokens_server": pa.array(prompt),
        "completion_tokens_server": pa.array(np.where(ok, completion, 0).astype(np.int32)),
        "prompt_tokens_client": pa.array(prompt),
        "completion_tokens_client": pa.array(np.where(ok, completion, 0).astype(np.int32)),
        "stream": pa.array(np.ones(n, dtype=bool)),
        "status": pa.array(status),
        "http_status": pa.array(np.where(ok, 200, 500).astype(np.int32)),
    }
    arrays = [columns[f.name].cast(f.type) if f.name in columns else nulls.cast(f.type) for f in REQUESTS]
    return pa.Table.from_arrays(arrays, schema=REQUESTS)


def write_raw(results: Path, rows: int, runs: int = 1) -> int:
    """``runs`` runs of ``rows`` request rows each; returns the rows written."""
    written = 0
    for i in range(runs):
        written += write_run(
            results,
            f"bench-run-{i:04d}",
            rows,
            np.random.default_rng(i),
            datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=i),
        )
    return written


def write_run(results: Path, run_id: str, rows: int, rng: np.random.Generator, now: datetime) -> int:
    layout = ResultsLayout(results)
    written = 0
    cells: list[dict] = []
    for name, _instance, _ in EXPERIMENTS_:
        table = requests_table(run_id, name, rows // len(EXPERIMENTS_), rng, now.timestamp())
        directory = layout.requests_dir(name, run_id)
        for i, start in enumerate(range(0, table.num_rows, 250_000)):
            write_atomic(table.slice(start, 250_000), REQUESTS, directory / f"part-{i:05d}.parquet")
        written += table.num_rows
        planned = table.group_by(["payload_file", "concurrency"]).aggregate([("request_index", "count")]).to_pylist()
        cells.extend(
            {
                "run_id": run_id,
                "experiment": name,
                "payload_file": c["payload_file"],
                "concurrency": c["concurrency"],
                "planned_requests": c["request_index_count"],
                "warmup_requests": 0,
            }
            for c in planned
        )
    write_atomic(cells, CELLS, layout.run_table_dir("cells", run_id) / "cells.parquet")
    run = {f.name: None for f in RUNS} | {
        "run_id": run_id,
        "benchmark": "bench",
        "config_path": "bench",
        "config_hash": "0",
        "config_json": "{}",
        "fmb_version": "bench",
        "host": "bench",
        "python_version": "3",
        "started_at": now,
        "ended_at": now,
        "status": "completed",
        "dataset_of_interest": "en_1000-2000",
        "latency_budget_s": 2.0,
        "cost_per_10k_txn_budget_usd": 50.0,
        "error_rate_budget": 0.05,
        "txn_count_for_showing_cost": 10000,
    }
    write_atomic([run], RUNS, layout.run_table_dir("runs", run_id) / "run.parquet")
    experiments = [
        {f.name: None for f in EXPERIMENTS}
        | {
            "run_id": run_id,
            "experiment": name,
            "backend": "sagemaker",
            "instance_type": instance,
            "instance_count": 1,
            "deployed": False,
            "stream": True,
        }
        for name, instance, _ in EXPERIMENTS_
    ]
    write_atomic(experiments, EXPERIMENTS, layout.run_table_dir("experiments", run_id) / "experiments.parquet")
    prices = [
        {
            "run_id": run_id,
            "pricing_type": "instance",
            "price_key": instance,
            "price_per_hour_usd": price,
            "input_per_1k_tokens_usd": None,
            "output_per_1k_tokens_usd": None,
            "source": "bench",
        }
        for _, instance, price in EXPERIMENTS_
    ]
    write_atomic(prices, PRICING, layout.run_table_dir("pricing", run_id) / "pricing.parquet")
    write_atomic([], PROMPTS, layout.prompts_dir("bench") / "prompts.parquet")
    return written
