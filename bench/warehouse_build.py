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
from pathlib import Path

from synthetic_raw import write_raw


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
