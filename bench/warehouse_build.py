"""Time `dbt build` of the warehouse over millions of request rows.

Writes synthetic raw tables with the collector's own schemas and Parquet writer (one run,
4 experiments, 5 payload files, 6 concurrency levels: 120 cells), then runs `fmb build`
in a child process and prints its wall time and peak memory (resident set size).
The goal for 5 million rows is under 30 s on a 2-core machine.

    python bench/warehouse_build.py [--rows 5000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from fmb.collector.parquet_io import write_atomic
from fmb.collector.schemas import EXPERIMENTS, PRICING, PROMPTS, REQUESTS, RUNS
from fmb.paths import ResultsLayout

EXPERIMENTS_ = [("g5-xl", "ml.g5.xlarge", 1.4084), ("g5-2xl", "ml.g5.2xlarge", 1.515),
                ("g6-2xl", "ml.g6.2xlarge", 1.222), ("p4d", "ml.p4d.24xlarge", 37.688)]
PAYLOADS = [f"payload_en_{a}-{b}.jsonl" for a, b in ((1, 500), (500, 1000), (1000, 2000), (2000, 3000), (3000, 4000))]
CONCURRENCY = [1, 2, 4, 8, 16, 32]
RUN_ID = "bench-run"


def requests_table(experiment: str, rows: int, rng: np.random.Generator, t0: float) -> pa.Table:
    cell = rows // (len(PAYLOADS) * len(CONCURRENCY))
    payload = np.repeat(np.arange(len(PAYLOADS)), len(CONCURRENCY) * cell)
    conc = np.tile(np.repeat(np.array(CONCURRENCY, dtype=np.int32), cell), len(PAYLOADS))
    n = len(payload)
    e2e = rng.gamma(4.0, 300.0, n)
    ttft = rng.uniform(20, 200, n)
    ttlt = ttft + (e2e - ttft) * 0.98
    status = rng.choice(np.array(["ok", "error", "timeout", "throttled"]), n, p=[0.97, 0.01, 0.01, 0.01])
    ok = status == "ok"
    start_us = (t0 * 1e6 + np.arange(n) * 1000 + rng.uniform(0, 500, n)).astype("int64")
    end_us = start_us + (e2e * 1000).astype("int64")
    prompt = rng.integers(1, 4000, n).astype(np.int32)
    completion = rng.integers(1, 512, n).astype(np.int32)
    nulls = pa.nulls(n)
    columns = {
        "run_id": pa.array(np.full(n, RUN_ID)),
        "experiment": pa.array(np.full(n, experiment)),
        "payload_file": pa.array(np.array(PAYLOADS)[payload]),
        "concurrency": pa.array(conc),
        "request_index": pa.array(np.arange(n, dtype=np.int64)),
        "worker": pa.array(np.zeros(n, dtype=np.int32)),
        "prompt_id": pa.array(np.char.add("p", (np.arange(n) % 1000).astype(str))),
        "is_warmup": pa.array(np.zeros(n, dtype=bool)),
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
        "prompt_tokens": pa.array(prompt),
        "completion_tokens": pa.array(np.where(ok, completion, 0).astype(np.int32)),
        "token_count_source": pa.array(np.full(n, "server")),
        "stream": pa.array(np.ones(n, dtype=bool)),
        "status": pa.array(status),
        "http_status": pa.array(np.where(ok, 200, 500).astype(np.int32)),
    }
    arrays = [columns[f.name].cast(f.type) if f.name in columns else nulls.cast(f.type) for f in REQUESTS]
    return pa.Table.from_arrays(arrays, schema=REQUESTS)


def write_raw(results: Path, rows: int) -> int:
    layout = ResultsLayout(results)
    rng = np.random.default_rng(0)
    now = datetime.now(UTC)
    written = 0
    for name, instance, _ in EXPERIMENTS_:
        table = requests_table(name, rows // len(EXPERIMENTS_), rng, now.timestamp())
        directory = layout.requests_dir(name, RUN_ID)
        for i, start in enumerate(range(0, table.num_rows, 250_000)):
            write_atomic(table.slice(start, 250_000), REQUESTS, directory / f"part-{i:05d}.parquet")
        written += table.num_rows
    run = {f.name: None for f in RUNS} | {
        "run_id": RUN_ID, "benchmark": "bench", "config_path": "bench", "config_hash": "0", "config_json": "{}",
        "fmb_version": "bench", "host": "bench", "python_version": "3", "started_at": now, "ended_at": now,
        "status": "completed", "dataset_of_interest": "en_1000-2000", "latency_budget_s": 2.0,
        "cost_per_10k_txn_budget_usd": 50.0, "error_rate_budget": 0.05, "txn_count_for_showing_cost": 10000}
    write_atomic([run], RUNS, layout.run_table_dir("runs", RUN_ID) / "run.parquet")
    experiments = [{f.name: None for f in EXPERIMENTS} | {
        "run_id": RUN_ID, "experiment": name, "backend": "sagemaker", "instance_type": instance, "instance_count": 1,
        "deployed": False, "stream": True} for name, instance, _ in EXPERIMENTS_]
    write_atomic(experiments, EXPERIMENTS, layout.run_table_dir("experiments", RUN_ID) / "experiments.parquet")
    prices = [{"run_id": RUN_ID, "pricing_type": "instance", "price_key": instance, "price_per_hour_usd": price,
               "input_per_1k_tokens_usd": None, "output_per_1k_tokens_usd": None, "source": "bench"}
              for _, instance, price in EXPERIMENTS_]
    write_atomic(prices, PRICING, layout.run_table_dir("pricing", RUN_ID) / "pricing.parquet")
    write_atomic([], PROMPTS, layout.prompts_dir("bench") / "prompts.parquet")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--keep", type=Path, help="Write the results here and keep them.")
    args = parser.parse_args()
    results = args.keep or Path(tempfile.mkdtemp(prefix="fmb-bench-")) / "results"
    try:
        started = time.perf_counter()
        rows = write_raw(results, args.rows)
        print(f"wrote {rows:,} request rows in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "fmb", "build", "--results", str(results)], check=True)
        elapsed = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"dbt build over {rows:,} rows: {elapsed:.1f} s wall, peak memory {peak_mb:,.0f} MB")
    finally:
        if args.keep is None:
            shutil.rmtree(results.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
