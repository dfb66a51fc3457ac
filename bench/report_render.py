"""Time `fmb report` on a warehouse that holds many runs.

Writes ``--runs`` synthetic runs (120 cells each) with the collector's schemas, builds the
warehouse once, then renders the report of the latest run and prints how long the
rendering took (loading the marts, drawing five charts, writing report.md).

    python bench/report_render.py [--runs 100] [--rows-per-run 12000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synthetic_raw import write_raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rows-per-run", type=int, default=12_000)
    args = parser.parse_args()
    results = Path(tempfile.mkdtemp(prefix="fmb-bench-")) / "results"
    try:
        rows = write_raw(results, args.rows_per_run, args.runs)
        subprocess.run(
            [sys.executable, "-m", "fmb", "build", "--results", str(results)], check=True, stdout=subprocess.DEVNULL
        )
        print(f"warehouse of {args.runs} runs, {rows:,} request rows", flush=True)
        for attempt in (1, 2):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "fmb", "report", "--results", str(results)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            print(
                f"fmb report (latest run, process start included), attempt {attempt}: "
                f"{time.perf_counter() - started:.1f} s"
            )
    finally:
        shutil.rmtree(results.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
