"""The raw tables: the one definition of each schema, shared with the dbt sources.

The raw Parquet tables are the contract between the collector and the warehouse.
Each column carries its description in the field metadata (``description``); a test
checks that ``dbt_project/models/sources.yml`` declares exactly these columns.

Layout under the results folder (hive partitions, percent-encoded values)::

    raw/requests/experiment=<name>/run_id=<id>/part-NNNNN.parquet   one row per request
    raw/runs/run_id=<id>/run.parquet                                one row per run
    (a sharded run: part-shard-I-of-N-NNNNN.parquet and run-shard-I-of-N.parquet, one
    row per shard; the plan tables below are the same for every shard, see
    fmb.collector.shard)
    raw/experiments/run_id=<id>/experiments.parquet                 one row per endpoint in a run
    raw/cells/run_id=<id>/cells.parquet                             one row per planned cell of a run
    raw/pricing/run_id=<id>/pricing.parquet                         prices in force for the run
    raw/prompts/benchmark=<name>/prompts.parquet                    prompts written by `fmb prepare`
    raw/host_metrics/run_id=<id>/part-NNNNN.parquet                 host telemetry samples, long format
    raw/server_metrics/run_id=<id>/part-NNNNN.parquet               model servers' Prometheus samples, long format
    raw/endpoint_metrics/run_id=<id>/part-NNNNN.parquet             CloudWatch datapoints of endpoints
    raw/client_metrics/run_id=<id>/part-NNNNN.parquet               the collector's CPU, loop lag and in-flight count
    raw/evaluation_runs/run_id=<id>/<evaluation_id>.parquet         one row per `fmb evaluate` of a run
    raw/evaluations/run_id=<id>/evaluation_id=<id>/part-NNNNN.parquet        one row per judge call
    raw/evaluation_scores/run_id=<id>/evaluation_id=<id>/part-NNNNN.parquet  one row per response judged

(fmb.paths.ResultsLayout names these folders.)
"""

from __future__ import annotations

from typing import Literal, get_args

import pyarrow as pa

UTC_TS = pa.timestamp("us", tz="UTC")


def _f(name: str, type_: pa.DataType, description: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"description": description})


# How a request ended. Latency percentiles use only `ok`; error rates count every status
# except `cancelled` (requests cut off when a run was stopped). The dbt staging models
# accept exactly these values (a test ties the two together).
RequestStatus = Literal["ok", "error", "timeout", "throttled", "cancelled"]
REQUEST_STATUSES: tuple[str, ...] = get_args(RequestStatus)
# How a run ended (or that it is still going).
RunStatus = Literal["running", "completed", "failed", "interrupted", "abandoned"]
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
# Where a request's token counts came from (decided in SQL, int_requests_classified: the
# server's count if given, else the client's).
TokenCountSource = Literal["server", "client", "mixed"]
TOKEN_COUNT_SOURCES: tuple[str, ...] = get_args(TokenCountSource)

REQUESTS = pa.schema(
    [
        _f("run_id", pa.string(), "Run that sent the request.", False),
        _f("experiment", pa.string(), "Experiment (endpoint) name from the config.", False),
        _f("payload_file", pa.string(), "Payload file the prompt came from.", False),
        _f(
            "concurrency",
            pa.int32(),
            "Concurrency level of the cell: requests kept in flight (open loop and trace: at most in flight, "
            "load.max_in_flight, or without a cap the cell's request count).",
            False,
        ),
        _f("request_index", pa.int64(), "Order of the request within its cell (warm-ups first).", False),
        _f("worker", pa.int32(), "Concurrency slot that sent the request (0-based).", False),
        _f("prompt_id", pa.string(), "sha256 of the prompt text, first 16 hex digits.", False),
        _f("is_warmup", pa.bool_(), "Warm-up request: sent before the cell, never measured.", False),
        _f(
            "session",
            pa.int32(),
            "Collection session that sent the request: 0 for `fmb collect`, 1, 2, ... for "
            "each `fmb collect --resume` of the run.",
            False,
        ),
        _f(
            "shard",
            pa.int32(),
            "Shard (1-based) whose collector sent the request (`fmb collect --shard I/N`); 1 in a run "
            "on one collector, null in rows written before fmb recorded shards.",
        ),
        _f(
            "shard_count",
            pa.int32(),
            "Shards the run was split into (N of --shard I/N); 1 in a run on one collector, null in "
            "rows written before fmb recorded shards.",
        ),
        _f(
            "model_copy",
            pa.int32(),
            "Copy of the model that served the request (1, 2, ...) when the endpoint runs several "
            "(FMBench's model_copies); null when there is one.",
        ),
        _f(
            "attempts",
            pa.int32(),
            "Times the request was sent (1 without retries, also 2 when a kept-alive "
            "connection was found closed); latency covers the last attempt only.",
            False,
        ),
        _f("started_at", UTC_TS, "UTC wall-clock time the request was sent.", False),
        _f("ended_at", UTC_TS, "UTC wall-clock time the response ended or the request failed.", False),
        _f(
            "scheduled_at",
            UTC_TS,
            "Open loop and trace replay: UTC wall-clock time the request was due (null in closed loop and waves).",
        ),
        _f(
            "send_lateness_ms",
            pa.float64(),
            "Open loop and trace replay: from when the request was due to when it was sent (ms, monotonic clock; "
            "includes waiting for load.max_in_flight and earlier throttled tries). Latency from the schedule is "
            "this plus the latency from sending.",
        ),
        _f("ttft_ms", pa.float64(), "Request sent to the first chunk carrying generated content (ms)."),
        _f("ttlt_ms", pa.float64(), "Request sent to the last chunk carrying generated content (ms)."),
        _f("e2e_latency_ms", pa.float64(), "Request sent to the end of the response (ms, monotonic clock).", False),
        _f("chunk_gaps_ms", pa.list_(pa.float32()), "Gaps between consecutive content chunks (ms)."),
        _f("content_chunks", pa.int32(), "Chunks that carried generated content."),
        _f("prompt_tokens_server", pa.int32(), "Prompt tokens from the server's usage."),
        _f("completion_tokens_server", pa.int32(), "Completion tokens from the server's usage."),
        _f("prompt_tokens_client", pa.int32(), "Prompt tokens from the client tokenizer."),
        _f("completion_tokens_client", pa.int32(), "Completion tokens from the client tokenizer."),
        _f("stream", pa.bool_(), "The response was streamed.", False),
        _f("status", pa.string(), "ok, error, timeout, throttled or cancelled.", False),
        _f("http_status", pa.int32(), "HTTP status code, when a response arrived."),
        _f("error_type", pa.string(), "Short class of the failure, e.g. http_500, ReadTimeout, stream_error."),
        _f("error_message", pa.string(), "Short error message, secrets removed."),
        _f("completion_text", pa.string(), "Generated text (for later accuracy evaluation)."),
    ]
)

RUNS = pa.schema(
    [
        _f("run_id", pa.string(), "Run identifier: UTC start time and a random suffix.", False),
        _f("benchmark", pa.string(), "general.name of the config.", False),
        _f("model_name", pa.string(), "general.model_name of the config."),
        _f("title", pa.string(), "report.title of the config."),
        _f("config_path", pa.string(), "Path of the config file.", False),
        _f("config_hash", pa.string(), "sha256 of the normalised config (secrets removed), 16 hex digits.", False),
        _f("config_json", pa.string(), "The normalised config as JSON, secrets removed.", False),
        _f("fmb_version", pa.string(), "fmb version that made the run.", False),
        _f("host", pa.string(), "Host name of the machine that ran the collector.", False),
        _f("python_version", pa.string(), "Python version of the collector.", False),
        _f("started_at", UTC_TS, "UTC time the run started.", False),
        _f("ended_at", UTC_TS, "UTC time the run ended; null while running or after a crash."),
        _f(
            "status",
            pa.string(),
            "running, completed, failed, interrupted, or abandoned (the collector process "
            "ended without recording the end of the run, e.g. killed).",
            False,
        ),
        _f("status_message", pa.string(), "Why a run failed or was interrupted."),
        _f("dataset_of_interest", pa.string(), "metrics.dataset_of_interest: substring of payload file names."),
        _f("latency_budget_s", pa.float64(), "report.latency_budget: seconds, against p95 latency."),
        _f("cost_per_10k_txn_budget_usd", pa.float64(), "report.cost_per_10k_txn_budget in USD."),
        _f("error_rate_budget", pa.float64(), "report.error_rate_budget (0 to 1)."),
        _f(
            "selection",
            pa.string(),
            "report.selection: how the best option is chosen, cheapest or fmbench (null "
            "before fmb recorded it: cheapest).",
        ),
        _f(
            "min_requests_for_best",
            pa.int64(),
            "report.min_requests_for_best: a cell with fewer measured requests "
            "is never the best option (null before fmb recorded it: 20).",
        ),
        _f("txn_count_for_showing_cost", pa.int64(), "report.txn_count_for_showing_cost.", False),
        _f(
            "run_group",
            pa.string(),
            "Run group: the runs of one `fmb run --repeat N`, named by the first run's id "
            "(a run on its own is its own group; null in runs collected before fmb recorded groups).",
        ),
        _f("repeat_index", pa.int32(), "Position of the run in its group: 1, 2, ... (null before fmb recorded it)."),
        _f(
            "shard",
            pa.int32(),
            "Shard (1-based) this row describes: a sharded run (`fmb collect --shard I/N`) has one row "
            "per shard's collector; 1 in a run on one collector, null before fmb recorded shards.",
        ),
        _f(
            "shard_count",
            pa.int32(),
            "Shards the run was planned with (N of --shard I/N); 1 in a run on one collector, null "
            "before fmb recorded shards.",
        ),
        _f("client_cpu_model", pa.string(), "CPU model of the machine that ran the collector."),
        _f("client_logical_cores", pa.int32(), "Logical CPU cores of the machine that ran the collector."),
        _f("client_memory_bytes", pa.int64(), "Physical memory of the machine that ran the collector (bytes)."),
        _f("client_os", pa.string(), "Operating system of the machine that ran the collector."),
        _f("client_load_1m_before", pa.float64(), "1-minute load average of the client machine when the run started."),
        _f(
            "client_load_1m_after",
            pa.float64(),
            "1-minute load average of the client machine when the run ended; null while running or after a crash.",
        ),
        _f(
            "client_process_cpu_s",
            pa.float64(),
            "CPU seconds (all threads) the collector process used during the run; null while running or after a crash.",
        ),
    ]
)

EXPERIMENTS = pa.schema(
    [
        _f("run_id", pa.string(), "Run the endpoint was used in.", False),
        _f("experiment", pa.string(), "Experiment name from the config.", False),
        _f("backend", pa.string(), "fmb target: openai-chat, sagemaker, bedrock, tgi, ...", False),
        _f("endpoint", pa.string(), "URL, endpoint name or model id the requests went to (no credentials)."),
        _f("model_id", pa.string(), "Model id from the config."),
        _f("model_name", pa.string(), "Model name from the config."),
        _f(
            "instance_type",
            pa.string(),
            "Instance type, or the model id for token pricing (matched to a "
            "price in raw/pricing by int_experiments_priced).",
        ),
        _f("instance_count", pa.int32(), "Instances behind the endpoint (1 when unset).", False),
        _f("region", pa.string(), "AWS region, when it applies."),
        _f("deployed", pa.bool_(), "fmb deployed the endpoint (false: brought by the user).", False),
        _f("deployment_script", pa.string(), "FMBench deployment_script of the experiment."),
        _f("inference_script", pa.string(), "FMBench inference_script of the experiment."),
        _f("image_uri", pa.string(), "Container image, when given."),
        _f("stream", pa.bool_(), "Responses were streamed.", False),
        _f("parameter_set", pa.string(), "inference_spec.parameter_set."),
        _f("inference_parameters_json", pa.string(), "Inference parameters sent with each request, as JSON."),
        _f("deploy_seconds", pa.float64(), "Seconds fmb took to stand the endpoint up."),
        _f(
            "config_experiment",
            pa.string(),
            "The experiment's name in the config: an open-loop or trace experiment runs one experiment per load "
            "level, named <config name>@<level> (null in rows written before fmb had load modes).",
        ),
        _f(
            "load_mode",
            pa.string(),
            "How the requests were sent (load.mode): closed, waves, constant, poisson, gamma or trace "
            "(null in rows written before fmb had load modes: closed).",
        ),
        _f("request_rate_per_s", pa.float64(), "Open loop: the arrival rate; trace: the trace's mean rate, sped up."),
        _f("burstiness", pa.float64(), "Gamma arrivals: the shape of the gaps' distribution (1 is Poisson)."),
        _f("trace_speedup", pa.float64(), "Trace replay: how many times faster than the trace."),
        _f("max_in_flight", pa.int32(), "Open loop and trace: the cap on requests in flight (null: none)."),
        _f("ramp_up_s", pa.float64(), "Open loop: seconds over which the rate rose from 0 (its requests: warm-ups)."),
        _f("arrival_seed", pa.int64(), "Open loop: load.seed, from which the arrival times were drawn."),
        _f("knee_min_throughput_gain", pa.float64(), "load.knee_min_throughput_gain: least throughput growth."),
        _f("knee_min_slo_attainment", pa.float64(), "load.knee_min_slo_attainment: least share within the SLO."),
        _f("slo_ttft_ms", pa.float64(), "slo.ttft_ms: a request within the SLO has a TTFT at most this."),
        _f("slo_tpot_ms", pa.float64(), "slo.tpot_ms: a request within the SLO has a TPOT at most this."),
        _f("slo_e2e_latency_ms", pa.float64(), "slo.e2e_latency_ms: a request within the SLO ends within this."),
        _f(
            "lateness_threshold_ms",
            pa.float64(),
            "Open loop and trace: a cell whose p99 send lateness is above this is flagged as behind its schedule.",
        ),
    ]
)

CELLS = pa.schema(
    [
        _f("run_id", pa.string(), "Run the cell belongs to.", False),
        _f("experiment", pa.string(), "Experiment name from the config.", False),
        _f("payload_file", pa.string(), "Payload file of the cell.", False),
        _f("concurrency", pa.int32(), "Concurrency level of the cell.", False),
        _f("planned_requests", pa.int64(), "Measured requests the cell was planned to send (FMBench's rule).", False),
        _f("warmup_requests", pa.int64(), "Warm-up requests planned before the cell.", False),
        _f(
            "skip_reason",
            pa.string(),
            "Why the cell was not sent: a sweep (load.stop_past_knee) stopped below it, because a lower level's "
            "throughput_flat, slo_broken or client_behind; null for a cell that was to be sent.",
        ),
    ]
)

PRICING = pa.schema(
    [
        _f("run_id", pa.string(), "Run the prices were in force for.", False),
        _f("pricing_type", pa.string(), "instance (per hour) or token (per 1k tokens).", False),
        _f("price_key", pa.string(), "Instance type or model id the price is for.", False),
        _f("price_per_hour_usd", pa.float64(), "Instance price per hour in USD (instance pricing)."),
        _f("input_per_1k_tokens_usd", pa.float64(), "Price per 1k prompt tokens in USD (token pricing)."),
        _f("output_per_1k_tokens_usd", pa.float64(), "Price per 1k completion tokens in USD (token pricing)."),
        _f("source", pa.string(), "Pricing file the price came from.", False),
    ]
)

PROMPTS = pa.schema(
    [
        _f("benchmark", pa.string(), "general.name of the config that prepared the prompts.", False),
        _f("payload_file", pa.string(), "Payload file the prompt was written to.", False),
        _f("prompt_id", pa.string(), "sha256 of the prompt text, first 16 hex digits.", False),
        _f("source_file", pa.string(), "source_data_files entry the record came from.", False),
        _f("record_id", pa.string(), "The record's _id, or file:line.", False),
        _f("language", pa.string(), "The record's language, when it has one."),
        _f("prompt_tokens", pa.int32(), "Tokens of the filled prompt, counted by token_counter.", False),
        _f("token_counter", pa.string(), "Tokenizer used, or words*4/3 for FMBench's word rule.", False),
        _f("prompt_chars", pa.int32(), "Characters of the filled prompt.", False),
        _f("filter_min_tokens", pa.int32(), "Filter's min_length_in_tokens (inclusive); null if prepared elsewhere."),
        _f("filter_max_tokens", pa.int32(), "Filter's max_length_in_tokens (exclusive); null if prepared elsewhere."),
        _f("prepared_at", UTC_TS, "UTC time fmb prepare wrote the prompt.", False),
    ]
)

# What a host telemetry sample measured (see fmb.collector.host_telemetry for the metric names).
HostMetricSource = Literal["host", "nvidia", "neuron"]
HOST_METRIC_SOURCES: tuple[str, ...] = get_args(HostMetricSource)

HOST_METRICS = pa.schema(
    [
        _f("run_id", pa.string(), "Run the sample was taken during.", False),
        _f("host", pa.string(), "Host name of the machine sampled (the one that ran the collector).", False),
        _f("sampled_at", UTC_TS, "UTC wall-clock time the sample was taken.", False),
        _f(
            "source",
            pa.string(),
            "What took the sample: host (CPU and memory, psutil), nvidia (NVML) or neuron (neuron-monitor).",
            False,
        ),
        _f(
            "device",
            pa.string(),
            "Device sampled: host for the whole machine, the GPU index (nvidia) or the NeuronCore index (neuron).",
            False,
        ),
        _f(
            "metric",
            pa.string(),
            "Metric name, e.g. cpu_percent, memory_used_bytes, gpu_utilization_percent, gpu_power_watts, "
            "neuroncore_utilization_percent.",
            False,
        ),
        _f("value", pa.float64(), "Value of the metric, in unit.", False),
        _f("unit", pa.string(), "Unit of value: percent, bytes or watts.", False),
    ]
)

# What a judge said about a response; null when the call failed or its answer had no verdict.
Verdict = Literal["correct", "incorrect"]
VERDICTS: tuple[str, ...] = get_args(Verdict)
# How an evaluation (`fmb evaluate`) ended.
EvaluationStatus = Literal["running", "completed", "failed", "interrupted"]
EVALUATION_STATUSES: tuple[str, ...] = get_args(EvaluationStatus)

_RESPONSE_KEY = [
    _f("evaluation_id", pa.string(), "Evaluation (one `fmb evaluate` of a run) the row belongs to.", False),
    _f("run_id", pa.string(), "Run whose response was evaluated.", False),
    _f("experiment", pa.string(), "Experiment that gave the response.", False),
    _f("payload_file", pa.string(), "Payload file of the response's cell.", False),
    _f("concurrency", pa.int32(), "Concurrency of the response's cell.", False),
    _f("request_index", pa.int64(), "Request index of the response within its cell.", False),
    _f("session", pa.int32(), "Collection session of the response's row (requests.session).", False),
    _f("prompt_id", pa.string(), "sha256 of the prompt text, first 16 hex digits.", False),
]

EVALUATION_RUNS = pa.schema(
    [
        _f("evaluation_id", pa.string(), "Evaluation identifier: UTC start time and a random suffix.", False),
        _f("run_id", pa.string(), "Run whose responses were evaluated.", False),
        _f("started_at", UTC_TS, "UTC time the evaluation started.", False),
        _f("ended_at", UTC_TS, "UTC time the evaluation ended; null while it runs."),
        _f("status", pa.string(), "running, completed, failed or interrupted.", False),
        _f("status_message", pa.string(), "Why it failed or was stopped, secrets removed."),
        _f("method", pa.string(), "Voting method of the judge panel (FMBench: majority_vote).", False),
        _f("use_quantitative_metrics", pa.bool_(), "Whether the cosine-similarity thresholds check verdicts.", False),
        _f(
            "correct_cosine_threshold",
            pa.float64(),
            "A correct verdict stands when the response's cosine similarity is at least this (FMBench's "
            "correct_verdict_cosine_similarity_threshold).",
        ),
        _f(
            "incorrect_cosine_threshold",
            pa.float64(),
            "An incorrect verdict stands when the response's cosine similarity is at most this (FMBench's "
            "incorrect_verdict_cosine_similarity_threshold).",
        ),
        _f("embeddings_model", pa.string(), "Model that embedded responses and ground truths for cosine similarity."),
        _f(
            "judges_json", pa.string(), "The judge panel: model id, back end and prompt template of each (JSON).", False
        ),
        _f("eval_config", pa.string(), "File the evaluation settings came from (FMBench's model_eval_all_info.yml)."),
    ]
)

EVALUATIONS = pa.schema(
    [
        *_RESPONSE_KEY,
        _f("judge", pa.string(), "Judge model id as the panel names it.", False),
        _f(
            "judge_backend",
            pa.string(),
            "Back end the judge was called through (bedrock, sagemaker, openai-chat, ...).",
            False,
        ),
        _f("prompt_template", pa.string(), "Judge prompt template used.", False),
        _f("status", pa.string(), "ok, error, timeout or throttled: how the judge call ended.", False),
        _f("verdict", pa.string(), "correct or incorrect; null when the call failed or the answer had no verdict."),
        _f("explanation", pa.string(), "The judge's explanation of its verdict, secrets removed."),
        _f("error_type", pa.string(), "Short class of the failure, e.g. http_429, no_verdict."),
        _f("error_message", pa.string(), "Short error message, secrets removed."),
        _f("prompt_tokens", pa.int32(), "Prompt tokens of the judge call (the judge's count, else the client's)."),
        _f(
            "completion_tokens",
            pa.int32(),
            "Completion tokens of the judge call (the judge's count, else the client's).",
        ),
        _f("latency_ms", pa.float64(), "Judge call sent to its answer's end (ms).", False),
        _f("attempts", pa.int32(), "Times the judge call was sent (retries after throttling included).", False),
        _f("started_at", UTC_TS, "UTC time the judge call was sent.", False),
    ]
)

EVALUATION_SCORES = pa.schema(
    [
        *_RESPONSE_KEY,
        _f("ground_truth", pa.string(), "Ground truth of the prompt (datasets.ground_truth_col_key)."),
        _f("question", pa.string(), "Question of the prompt (datasets.question_col_key)."),
        _f("cosine_similarity", pa.float64(), "Cosine similarity of the response's and the ground truth's embeddings."),
        _f("levenshtein_ratio", pa.float64(), "Normalized Levenshtein similarity of response and ground truth, 0..1."),
        _f("token_set_ratio", pa.float64(), "Token-set similarity of response and ground truth, 0..1."),
        _f("exact_match", pa.bool_(), "Response equals the ground truth (or one of its options) once normalized."),
        _f("token_f1", pa.float64(), "Token F1 of response against the ground truth (best over its options)."),
        _f("embeddings_model", pa.string(), "Model that embedded the texts for cosine_similarity."),
    ]
)

# The type a Prometheus metric family declares (prometheus-client's names).
PrometheusType = Literal["counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset", "unknown"]
PROMETHEUS_TYPES: tuple[str, ...] = get_args(PrometheusType)

SERVER_METRICS = pa.schema(
    [
        _f("run_id", pa.string(), "Run the sample was scraped during.", False),
        _f("experiment", pa.string(), "Experiment whose model server was scraped.", False),
        _f(
            "model_copy",
            pa.int32(),
            "Copy of the model whose server was scraped (1, 2, ...) when the endpoint runs several; null when "
            "there is one.",
        ),
        _f("scraped_at", UTC_TS, "UTC wall-clock time the scrape's response arrived.", False),
        _f("family", pa.string(), "Metric family, as the server declares it (e.g. vllm:num_requests_waiting).", False),
        _f(
            "metric_type",
            pa.string(),
            "Type of the family: counter, gauge, histogram, gaugehistogram, summary, info, stateset or unknown.",
            False,
        ),
        _f(
            "metric",
            pa.string(),
            "Sample name: the family's name, or it with a suffix (_total, _bucket, _sum, _count, _created).",
            False,
        ),
        _f("labels", pa.string(), "The sample's labels as a JSON object with sorted keys ({} when none).", False),
        _f("value", pa.float64(), "Value of the sample (counters stay cumulative; rates are computed in SQL).", False),
    ]
)

ENDPOINT_METRICS = pa.schema(
    [
        _f("run_id", pa.string(), "Run whose window was fetched.", False),
        _f("experiment", pa.string(), "Experiment whose endpoint the datapoints describe.", False),
        _f(
            "fetched_at",
            UTC_TS,
            "UTC time of the fetch; a later fetch of the same run and experiment supersedes an earlier one.",
            False,
        ),
        _f(
            "namespace",
            pa.string(),
            "CloudWatch namespace, e.g. AWS/SageMaker, /aws/sagemaker/Endpoints, AWS/Bedrock.",
            False,
        ),
        _f(
            "metric", pa.string(), "CloudWatch metric name, e.g. Invocations, ModelLatency, InvocationThrottles.", False
        ),
        _f("dimensions", pa.string(), "The metric's dimensions as a JSON object with sorted keys.", False),
        _f("stat", pa.string(), "Statistic of the datapoint: Sum, Average, Maximum, Minimum or SampleCount.", False),
        _f("period_s", pa.int32(), "Length of the datapoint's period in seconds.", False),
        _f("period_started_at", UTC_TS, "UTC start of the datapoint's period.", False),
        _f("value", pa.float64(), "Value of the statistic over the period, in unit.", False),
        _f(
            "unit", pa.string(), "Unit of value as CloudWatch documents the metric (Count, Microseconds, Percent, ...)."
        ),
    ]
)

CLIENT_METRICS = pa.schema(
    [
        _f("run_id", pa.string(), "Run the sample was taken during.", False),
        _f("host", pa.string(), "Host name of the machine that ran the collector.", False),
        _f("pid", pa.int64(), "Process id of the collector.", False),
        _f("sampled_at", UTC_TS, "UTC wall-clock time at the end of the sampled interval.", False),
        _f("interval_s", pa.float64(), "Length of the sampled interval in seconds (monotonic clock).", False),
        _f(
            "cpu_percent",
            pa.float64(),
            "CPU time the collector process used in the interval, in percent of one core (above 100 with threads "
            "on several cores).",
            False,
        ),
        _f(
            "loop_lag_max_ms",
            pa.float64(),
            "Longest delay of the event loop in the interval: how late a timer fired that was due at once (ms).",
            False,
        ),
        _f(
            "loop_lag_mean_ms", pa.float64(), "Mean delay of the event loop's probe timers in the interval (ms).", False
        ),
        _f("in_flight", pa.int32(), "Requests in flight at the end of the interval.", False),
        _f("in_flight_max", pa.int32(), "Most requests in flight at once during the interval.", False),
        _f("requests_started", pa.int32(), "Requests sent during the interval (warm-ups included).", False),
        _f("requests_ended", pa.int32(), "Requests that ended during the interval (warm-ups included).", False),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "requests": REQUESTS,
    "runs": RUNS,
    "experiments": EXPERIMENTS,
    "cells": CELLS,
    "pricing": PRICING,
    "prompts": PROMPTS,
    "host_metrics": HOST_METRICS,
    "server_metrics": SERVER_METRICS,
    "endpoint_metrics": ENDPOINT_METRICS,
    "client_metrics": CLIENT_METRICS,
    "evaluation_runs": EVALUATION_RUNS,
    "evaluations": EVALUATIONS,
    "evaluation_scores": EVALUATION_SCORES,
}
