"""How close fmb's recorded timings come to what the mock endpoint is told to do.

Runs `fmb prepare` and `fmb collect` against the mock (TTFT 40 ms, 5 ms between tokens,
32 tokens) at concurrency 1, 4 and 16, eight rounds each after one warm-up round, and
prints the median recorded TTFT and chunk gap per concurrency level. The difference to
40 ms and 5 ms is what the collector, the mock and the loopback network add together.

    python bench/mock_calibration.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from textwrap import dedent

import pyarrow.dataset as ds
from click.testing import CliRunner

from fmb.cli import cli
from fmb.collector.mock.process import mock_server

CONFIG = """
general: {name: calibration}
s3_read_data: {source_data_files: ["synthetic:exact-lengths"]}
datasets:
  prompt_template_keys: [input]
  min_iters_per_combination: 8
  max_iters_per_combination: 8
  synthetic: {prompts_per_filter: 8}
  filters:
  - {language: en, min_length_in_tokens: 40, max_length_in_tokens: 60, payload_file: p.jsonl}
inference_parameters:
  chat: {max_tokens: 32}
experiments:
- name: mock
  api: openai-chat
  endpoint_url: URL/v1
  warmup_requests: 16
  inference_spec: {parameter_set: chat}
  payload_files: [p.jsonl]
  concurrency_levels: [1, 4, 16]
"""


def one_run() -> list[tuple[int, float, float]]:
    folder = Path(tempfile.mkdtemp(prefix="fmb-calibration-"))
    runner = CliRunner()
    with mock_server(ttft_ms=40, itl_ms=5, output_tokens=32) as url:
        config = folder / "config.yml"
        config.write_text(dedent(CONFIG).replace("URL", url))
        for args in (["prepare"], ["collect", "--quiet"]):
            result = runner.invoke(cli, [*args, str(config), "--results", str(folder / "results")])
            if result.exit_code:
                raise SystemExit(result.output)
    rows = [
        r
        for r in ds.dataset(folder / "results" / "raw" / "requests", partitioning="hive").to_table().to_pylist()
        if not r["is_warmup"] and r["status"] == "ok"
    ]
    out = []
    for c in (1, 4, 16):
        cell = [r for r in rows if r["concurrency"] == c]
        out.append(
            (
                c,
                statistics.median(r["ttft_ms"] for r in cell),
                statistics.median(g for r in cell for g in r["chunk_gaps_ms"]),
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("run  concurrency  median TTFT (ms, target 40)  median chunk gap (ms, target 5)", flush=True)
    for run in range(1, args.runs + 1):
        for c, ttft, gap in one_run():
            print(f"{run:3}  {c:11}  {ttft:26.2f}  {gap:31.2f}", flush=True)


if __name__ == "__main__":
    main()
