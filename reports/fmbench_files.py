"""FMBench's two result files, written from the marts so the tools people run on FMBench results keep working.

FMBench's `3_run_inference` notebook writes two CSV files into its metrics folder, named by the config's
``report.per_inference_request_file`` (default ``per_inference_request_results.csv``) and
``report.all_metrics_file`` (default ``all_metrics.csv``), both formatted with ``{datetime}`` (written
``{{datetime}}`` in a config, whose whole text is formatted first); its
`4_get_evaluations` and `5_model_metric_analysis` notebooks read them back with ``pandas.read_csv``.
`fmb report` writes the same two files, with FMBench's column names in FMBench's order, beside report.md.
Every value is a column of a mart, selected here; times are in seconds, as FMBench writes them.

Per-request file (one row per measured request of the run, from the ``requests`` mart):

==========================  ==========================================================================
FMBench column              fmb source
==========================  ==========================================================================
endpoint_name               requests.endpoint (URL, endpoint name or model id; no credentials)
prompt                      the payload file's ``inputs`` for the request's prompt_id (see below)
question                    the payload record's ``question``, when it has one
ground_truth                the payload record's ``ground_truth`` (a list joined with ``,``, as FMBench)
base64_img                  empty: fmb sends text prompts only
payload_file                requests.payload_file
completion                  requests.completion_text (empty for a failed request, as FMBench's None)
prompt_tokens               requests.prompt_tokens (the server's count, else the client tokenizer's)
completion_tokens           requests.completion_tokens, for successful requests
latency                     requests.e2e_latency_ms / 1000, for successful requests
time_to_first_token         requests.ttft_ms / 1000
time_per_output_token       requests.tpot_ms / 1000
time_to_last_token          requests.ttlt_ms / 1000
uuid                        md5 of run, experiment, payload file, concurrency and request index: a
                            stable 32-hex-digit id where FMBench draws uuid4().hex
experiment_name             requests.experiment
concurrency                 requests.concurrency
instance_type               requests.instance_type
instance_count              requests.instance_count
EndpointName                requests.endpoint
ModelName                   requests.model_name
Image                       requests.image_uri
S3Uri                       empty: fmb does not record the model artifact's S3 location
==========================  ==========================================================================

The prompt, question and ground truth are the inputs, not results, so no mart holds them: they are read
from the run's payload files (RESULTS/payloads/<benchmark>/), matched by prompt_id, as `fmb evaluate`
matches them. When a payload file is gone, those three columns stay empty for its requests.

FMBench also spreads the experiment's inference parameters (``max_new_tokens``, ``temperature``, ...)
into columns between payload_file and completion; their names depend on the config, so fmb leaves them
out (they are in experiment_runs and in the run's config). FMBench writes the SageMaker endpoint's
container ``Environment`` variables as columns too; fmb does not record them.

All-metrics file (one row per cell of the run, from the ``cells`` mart joined to ``experiment_runs``):

==============================  ======================================================================
FMBench column                  fmb source
==============================  ======================================================================
experiment_name                 cells.experiment
concurrency                     cells.concurrency
payload_file                    cells.payload_file
errors                          empty: FMBench writes the Python repr of its failed responses; fmb's
                                failures are in the request_errors mart
successes                       cells.count_successful_requests
error_rate                      cells.error_rate
all_prompts_token_count         cells.prompt_tokens_total
prompt_token_count_mean         cells.prompt_tokens_mean
prompt_token_throughput         cells.input_tokens_per_s
all_completions_token_count     cells.completion_tokens_total
completion_token_count_mean     cells.completion_tokens_mean
completion_token_throughput     cells.output_tokens_per_s
transactions                    cells.count_requests
transactions_per_second         cells.requests_per_s
transactions_per_minute         cells.transactions_per_minute
latency_p50, _p95, _p99         cells.e2e_latency_p50_ms, _p95_ms, _p99_ms / 1000
TTFT_p50, TTFT_p99              cells.ttft_p50_ms, ttft_p99_ms / 1000
TPOT_p50, TPOT_p99              cells.tpot_p50_ms, tpot_p99_ms / 1000
instance_type                   cells.instance_type
instance_count                  cells.instance_count
EndpointName                    experiment_runs.endpoint
ModelName                       experiment_runs.model_name
Image                           experiment_runs.image_uri
S3Uri                           empty, as in the per-request file
==============================  ======================================================================

FMBench writes one all-metrics row per batch of ``concurrency`` requests and its analysis averages
them per (experiment, payload file, instance type, instance count, concurrency); fmb writes one row
per cell, whose figures are fmb's exact per-cell statistics (see the metric definitions in the
report), so that average is the cell's own value.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from fmb.paths import ResultsLayout
from fmb.prepare.payloads import prompt_id

DEFAULT_PER_INFERENCE_REQUEST_FILE = "per_inference_request_results.csv"
DEFAULT_ALL_METRICS_FILE = "all_metrics.csv"

PER_INFERENCE_COLUMNS = [
    "endpoint_name",
    "prompt",
    "question",
    "ground_truth",
    "base64_img",
    "payload_file",
    "completion",
    "prompt_tokens",
    "completion_tokens",
    "latency",
    "time_to_first_token",
    "time_per_output_token",
    "time_to_last_token",
    "uuid",
    "experiment_name",
    "concurrency",
    "instance_type",
    "instance_count",
    "EndpointName",
    "ModelName",
    "Image",
    "S3Uri",
]

ALL_METRICS_COLUMNS = [
    "experiment_name",
    "concurrency",
    "payload_file",
    "errors",
    "successes",
    "error_rate",
    "all_prompts_token_count",
    "prompt_token_count_mean",
    "prompt_token_throughput",
    "all_completions_token_count",
    "completion_token_count_mean",
    "completion_token_throughput",
    "transactions",
    "transactions_per_second",
    "transactions_per_minute",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "TTFT_p50",
    "TTFT_p99",
    "TPOT_p50",
    "TPOT_p99",
    "instance_type",
    "instance_count",
    "EndpointName",
    "ModelName",
    "Image",
    "S3Uri",
]

_PER_INFERENCE_SQL = """
select
    endpoint as endpoint_name,
    cast(null as varchar) as prompt,
    cast(null as varchar) as question,
    cast(null as varchar) as ground_truth,
    cast(null as varchar) as base64_img,
    payload_file,
    case when is_success then completion_text end as completion,
    prompt_tokens,
    case when is_success then completion_tokens end as completion_tokens,
    case when is_success then e2e_latency_ms / 1000.0 end as latency,
    ttft_ms / 1000.0 as time_to_first_token,
    tpot_ms / 1000.0 as time_per_output_token,
    ttlt_ms / 1000.0 as time_to_last_token,
    md5(concat_ws('/', run_id, experiment, payload_file, cast(concurrency as varchar),
        cast(request_index as varchar))) as uuid,
    experiment as experiment_name,
    concurrency,
    instance_type,
    instance_count,
    endpoint as "EndpointName",
    model_name as "ModelName",
    image_uri as "Image",
    cast(null as varchar) as "S3Uri",
    prompt_id
from requests
where run_id = ?
order by started_at, experiment, payload_file, concurrency, request_index
"""

_ALL_METRICS_SQL = """
select
    c.experiment as experiment_name,
    c.concurrency,
    c.payload_file,
    cast(null as varchar) as errors,
    c.count_successful_requests as successes,
    c.error_rate,
    c.prompt_tokens_total as all_prompts_token_count,
    c.prompt_tokens_mean as prompt_token_count_mean,
    c.input_tokens_per_s as prompt_token_throughput,
    c.completion_tokens_total as all_completions_token_count,
    c.completion_tokens_mean as completion_token_count_mean,
    c.output_tokens_per_s as completion_token_throughput,
    c.count_requests as transactions,
    c.requests_per_s as transactions_per_second,
    c.transactions_per_minute,
    c.e2e_latency_p50_ms / 1000.0 as latency_p50,
    c.e2e_latency_p95_ms / 1000.0 as latency_p95,
    c.e2e_latency_p99_ms / 1000.0 as latency_p99,
    c.ttft_p50_ms / 1000.0 as "TTFT_p50",
    c.ttft_p99_ms / 1000.0 as "TTFT_p99",
    c.tpot_p50_ms / 1000.0 as "TPOT_p50",
    c.tpot_p99_ms / 1000.0 as "TPOT_p99",
    c.instance_type,
    c.instance_count,
    e.endpoint as "EndpointName",
    e.model_name as "ModelName",
    e.image_uri as "Image",
    cast(null as varchar) as "S3Uri"
from cells c
left join experiment_runs e using (run_id, experiment)
where c.run_id = ?
order by c.experiment, c.payload_file, c.concurrency
"""


@dataclass
class FMBenchFiles:
    """The two files written (None where not written) and, when they were not, why."""

    per_inference_request_file: Path | None
    all_metrics_file: Path | None
    skipped: str | None = None


def file_name(configured: Any, default: str, run_started_at: datetime | None) -> str:
    """The file name the config gives (else FMBench's default), with FMBench's ``{datetime}`` (the run's
    start, UTC) filled in.

    Only the last part of a configured path is used: the files always go into the report's folder.
    """
    name = str(configured) if configured else default
    if "{datetime}" in name and run_started_at is not None:
        started = run_started_at.astimezone(UTC) if run_started_at.tzinfo else run_started_at
        name = name.replace("{datetime}", started.strftime("%Y-%m-%d-%H-%M-%S"))
    return Path(name).name or default


def _payload_records(payload_dir: Path, payload_files: set[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each payload record, by payload file and prompt_id; payload files that are gone are skipped."""
    records: dict[tuple[str, str], dict[str, Any]] = {}
    for payload_file in sorted(payload_files):
        path = payload_dir / payload_file
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:  # collect read this file; a line it could not have sent has no request here
                continue
            if not isinstance(record, dict):
                continue
            prompt = record.get("inputs") or record.get("prompt") or ""
            records[(payload_file, prompt_id(str(prompt)))] = record
    return records


def _inputs(record: dict[str, Any] | None) -> dict[str, Any]:
    """The prompt, question and ground truth of a payload record, as FMBench writes them."""
    if record is None:
        return {}
    truth = record.get("ground_truth")
    if isinstance(truth, list):
        truth = ",".join(str(t) for t in truth)
    return {
        "prompt": record.get("inputs") or record.get("prompt"),
        "question": record.get("question"),
        "ground_truth": truth,
    }


def _select(con: duckdb.DuckDBPyConnection, sql: str, run_id: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cursor = con.execute(sql, [run_id])
    return [d[0] for d in cursor.description], cursor.fetchall()


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """A CSV as pandas writes one: a header row, empty fields for missing values."""
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row[c] is None else row[c] for c in columns])
    partial.replace(path)


def write_fmbench_files(
    con: duckdb.DuckDBPyConnection,
    run: dict[str, Any],
    config: dict[str, Any],
    out: Path,
    results: Path,
) -> FMBenchFiles:
    """Write the run's per-request and all-metrics CSV files, FMBench's way, into ``out``."""
    found = con.execute(
        "select count(*) from information_schema.tables where table_schema = current_schema()"
        " and table_name = 'requests'"
    ).fetchone()
    if not found or not found[0]:
        return FMBenchFiles(None, None, "the warehouse predates the requests mart: rebuild it with `fmb build`")
    report = config.get("report") or {}
    started = run.get("started_at")
    per_request_path = out / file_name(
        report.get("per_inference_request_file"), DEFAULT_PER_INFERENCE_REQUEST_FILE, started
    )
    all_metrics_path = out / file_name(report.get("all_metrics_file"), DEFAULT_ALL_METRICS_FILE, started)

    names, tuples = _select(con, _PER_INFERENCE_SQL, run["run_id"])
    requests = [dict(zip(names, values, strict=True)) for values in tuples]
    payload_dir = ResultsLayout(results).payload_dir(run["benchmark"])
    records = _payload_records(payload_dir, {r["payload_file"] for r in requests})
    for row in requests:
        row.update(_inputs(records.get((row["payload_file"], row["prompt_id"]))))
    _write_csv(per_request_path, PER_INFERENCE_COLUMNS, requests)

    names, tuples = _select(con, _ALL_METRICS_SQL, run["run_id"])
    _write_csv(all_metrics_path, ALL_METRICS_COLUMNS, [dict(zip(names, v, strict=True)) for v in tuples])
    return FMBenchFiles(per_request_path, all_metrics_path)
