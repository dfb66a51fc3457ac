"""Raw tables for warehouse and report tests, written with the collector's own writers."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from textwrap import dedent

from fmb.collector.plan import make_plan
from fmb.collector.run_tables import RunRecorder
from fmb.collector.targets.openai import OpenAITarget
from fmb.collector.writer import RequestWriter
from fmb.config import load_config
from fmb.paths import ResultsLayout
from fmb.prepare.tokens import WordRule

CONFIG = """
general: {name: wh-test}
pricing: pricing.yml
metrics: {dataset_of_interest: en_1-100}
report: {latency_budget: 1.5, cost_per_10k_txn_budget: 50, error_rate_budget: 0.2, txn_count_for_showing_cost: 1000}
experiments:
- name: priced
  api: openai-chat
  endpoint_url: http://127.0.0.1:9/v1
  stream: true
  instance_type: ml.g5.xlarge
  instance_count: 2
  payload_files: [payload_en_1-100.jsonl, payload_en_100-200.jsonl]
  concurrency_levels: [1, 4]
- name: tokens
  api: openai-chat
  endpoint_url: http://127.0.0.1:9/v1
  stream: true
  instance_type: model.by.token
  payload_files: [payload_en_1-100.jsonl]
  concurrency_levels: [2]
- name: unpriced
  api: openai-chat
  endpoint_url: http://127.0.0.1:9/v1
  stream: true
  instance_type: mystery.type
  payload_files: [payload_en_1-100.jsonl]
  concurrency_levels: [1]
"""

PRICING = """
pricing:
  instance_based: {ml.g5.xlarge: 1.4084}
  token_based:
    model.by.token: {input-per-1k-tokens: 0.0003, output-per-1k-tokens: 0.0006}
"""


STATUS_WEIGHTS = {"ok": 80, "error": 8, "timeout": 4, "throttled": 4, "cancelled": 4}
ALL_FAIL = {"error": 3, "timeout": 1}


def fake_rows(
    run_id: str,
    experiment: str,
    payload: str,
    concurrency: int,
    n: int,
    rng: random.Random,
    t0: datetime,
    weights: dict[str, int] = STATUS_WEIGHTS,
) -> list[dict]:
    rows = []
    clock = t0
    for i in range(n):
        is_warmup = i < 2
        status = rng.choices(list(weights), list(weights.values()))[0]
        e2e = rng.uniform(200, 2500)
        ttft = rng.uniform(20, 150) if status == "ok" else None
        completion = rng.randint(1, 120) if status == "ok" else None
        ttlt = ttft + rng.uniform(0, e2e - ttft - 1) if ttft is not None else None
        started = clock + timedelta(milliseconds=rng.uniform(0, 300))
        clock = started
        prompt_tokens = rng.randint(1, 199)
        rows.append(
            {
                "run_id": run_id,
                "experiment": experiment,
                "payload_file": payload,
                "concurrency": concurrency,
                "request_index": i,
                "worker": i % concurrency,
                "prompt_id": f"p{i}",
                "is_warmup": is_warmup,
                "session": 0,
                "attempts": 1,
                "started_at": started,
                "ended_at": started + timedelta(milliseconds=e2e),
                "ttft_ms": ttft,
                "ttlt_ms": ttlt,
                "e2e_latency_ms": e2e,
                "chunk_gaps_ms": [1.0] * max((completion or 1) - 1, 0) if status == "ok" else None,
                "content_chunks": completion,
                "prompt_tokens_server": prompt_tokens if rng.random() < 0.7 else None,
                "completion_tokens_server": completion,
                "prompt_tokens_client": prompt_tokens + rng.choice([0, 0, 1]),
                "completion_tokens_client": completion,
                "stream": True,
                "status": status,
                "http_status": {"ok": 200, "error": 500, "throttled": 429}.get(status),
                "error_type": None if status == "ok" else f"kind_{status}",
                "error_message": None if status == "ok" else "x",
                "completion_text": None,
            }
        )
    return rows


def write_run(
    tmp_path: Path,
    results: Path,
    seed: int,
    start: datetime,
    *,
    config_text: str = CONFIG,
    pricing_text: str = PRICING,
    weights: dict[str, int] = STATUS_WEIGHTS,
    rows_per_cell: int = 120,
) -> str:
    """One run of `config_text` with random rows, written as `fmb collect` writes them."""
    (tmp_path / "pricing.yml").write_text(pricing_text)
    config = tmp_path / "config.yml"
    config.write_text(dedent(config_text))
    loaded = load_config(config, results_dir=results)
    layout = ResultsLayout(results)
    payloads = layout.payload_dir(loaded.name)
    payloads.mkdir(parents=True, exist_ok=True)
    for name in ("payload_en_1-100.jsonl", "payload_en_100-200.jsonl"):
        (payloads / name).write_text('{"inputs": "a prompt"}\n')
    plan = make_plan(loaded, layout)
    recorder = RunRecorder(loaded, layout, f"run-{seed}")
    recorder.started_at = start
    targets = {e.name: OpenAITarget(e, 1) for e in plan.experiments}
    recorder.write_experiments(plan, targets, {})
    recorder.write_pricing()
    recorder.ensure_prompts(plan, WordRule())
    rng = random.Random(seed)
    planned = {}
    for exp in plan.experiments:
        writer = RequestWriter(layout.requests_dir(exp.name, recorder.run_id), max_rows=37)
        for cell in plan.cells[exp.name]:
            rows = fake_rows(
                recorder.run_id, exp.name, cell.payload_file, cell.concurrency, rows_per_cell, rng, start, weights
            )
            for row in rows:
                writer.add(row)
            # The plan a complete cell had: its measured rows (a cancelled one is one it did not finish).
            measured = [r for r in rows if not r["is_warmup"] and r["status"] != "cancelled"]
            planned[exp.name, cell.payload_file, cell.concurrency] = len(measured)
        writer.close()
    recorder.write_cells(
        replace(
            plan,
            cells={
                name: [
                    replace(c, requests=planned[c.experiment, c.payload_file, c.concurrency], warmup=2) for c in cells
                ]
                for name, cells in plan.cells.items()
            },
        )
    )
    recorder.write_run("completed", ended=True)
    return recorder.run_id


def query(warehouse: Path, sql: str, params: list | None = None) -> list[dict]:
    """Rows of a query on the warehouse, as dicts (read-only, closed afterwards)."""
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        cursor = con.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


@dataclass
class JudgedResponse:
    """One response of a cell as an evaluation saw it: each judge's verdict and its scores.

    A verdict of None is a failed judge call (status error, no tokens); cosine_similarity None
    is a response whose embedding could not be compared.
    """

    experiment: str
    payload_file: str
    concurrency: int
    request_index: int
    verdicts: dict[str, str | None]
    cosine_similarity: float | None = 0.9
    exact_match: bool = False
    token_f1: float = 0.5

    @property
    def key(self) -> tuple[str, str, int, int]:
        """Experiment, payload file, concurrency and request index."""
        return (self.experiment, self.payload_file, self.concurrency, self.request_index)


JUDGE_PROMPT_TOKENS = 100
JUDGE_COMPLETION_TOKENS = 10


def write_evaluation(
    results: Path,
    run_id: str,
    evaluation_id: str,
    responses: list[JudgedResponse],
    *,
    started_at: datetime,
    status: str = "completed",
    use_quantitative_metrics: bool = True,
    correct_threshold: float | None = 0.6,
    incorrect_threshold: float | None = 0.4,
) -> None:
    """One evaluation of a run, written as `fmb evaluate` writes it (fmb.paths names the files)."""
    from fmb.collector.parquet_io import write_atomic
    from fmb.collector.schemas import EVALUATION_RUNS, EVALUATION_SCORES, EVALUATIONS

    layout = ResultsLayout(results)
    judges = sorted({judge for r in responses for judge in r.verdicts})
    run_row = {
        "evaluation_id": evaluation_id,
        "run_id": run_id,
        "started_at": started_at,
        "ended_at": None if status == "running" else started_at + timedelta(minutes=5),
        "status": status,
        "status_message": None,
        "method": "majority_vote",
        "use_quantitative_metrics": use_quantitative_metrics,
        "correct_cosine_threshold": correct_threshold,
        "incorrect_cosine_threshold": incorrect_threshold,
        "embeddings_model": "sentence-transformers/all-mpnet-base-v2",
        "judges_json": json.dumps([{"model_id": j, "backend": "bedrock", "prompt_template": "t"} for j in judges]),
        "eval_config": "model_eval_all_info.yml",
    }
    write_atomic([run_row], EVALUATION_RUNS, layout.evaluation_run_path(run_id, evaluation_id))
    calls, scores = [], []
    for r in responses:
        key = {
            "evaluation_id": evaluation_id,
            "run_id": run_id,
            "experiment": r.experiment,
            "payload_file": r.payload_file,
            "concurrency": r.concurrency,
            "request_index": r.request_index,
            "session": 0,
            "prompt_id": f"p{r.request_index}",
        }
        scores.append(
            key
            | {
                "ground_truth": "the answer",
                "question": "the question",
                "cosine_similarity": r.cosine_similarity,
                "levenshtein_ratio": 0.5,
                "token_set_ratio": 0.5,
                "exact_match": r.exact_match,
                "token_f1": r.token_f1,
                "embeddings_model": "sentence-transformers/all-mpnet-base-v2",
            }
        )
        for judge, verdict in r.verdicts.items():
            failed = verdict is None
            calls.append(
                key
                | {
                    "judge": judge,
                    "judge_backend": "bedrock",
                    "prompt_template": "t",
                    "status": "error" if failed else "ok",
                    "verdict": verdict,
                    "explanation": None if failed else "because",
                    "error_type": "http_500" if failed else None,
                    "error_message": "boom" if failed else None,
                    "prompt_tokens": None if failed else JUDGE_PROMPT_TOKENS,
                    "completion_tokens": None if failed else JUDGE_COMPLETION_TOKENS,
                    "latency_ms": 250.0,
                    "attempts": 1,
                    "started_at": started_at,
                }
            )
    write_atomic(calls, EVALUATIONS, layout.evaluation_dir("evaluations", run_id, evaluation_id) / "part-00000.parquet")
    write_atomic(
        scores,
        EVALUATION_SCORES,
        layout.evaluation_dir("evaluation_scores", run_id, evaluation_id) / "part-00000.parquet",
    )
