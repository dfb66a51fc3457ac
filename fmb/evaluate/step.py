"""`fmb evaluate`: FMBench's accuracy step over a run's responses, into three raw tables.

For every successful, measured response of the run (the last session's row where
`fmb collect --resume` sent a request again) fmb looks up the prompt's ground truth and
question in the payload file, computes the quantitative scores
(:mod:`fmb.evaluate.scores`: cosine similarity, Levenshtein and token-set ratios, exact
match, token F1) and asks every judge of the panel for a verdict, with bounded
concurrency (``run_parallel_inference_count``) and retries after throttling. Every judge
call is a row of ``raw/evaluations``, a failed one included; the scores go to
``raw/evaluation_scores`` and the evaluation itself to ``raw/evaluation_runs``. Votes,
thresholds and the final verdict are SQL (the dbt models), not Python.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from fmb.collector.parquet_io import write_atomic
from fmb.collector.runner import Policy, send_one
from fmb.collector.schemas import EVALUATION_RUNS, EVALUATION_SCORES, EVALUATIONS
from fmb.collector.targets import make_target
from fmb.collector.targets.base import Recorder, Request, Target
from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.config.schema import Experiment
from fmb.errors import FmbError
from fmb.evaluate.settings import EvalSettings, Judge, instructions_text, load_settings, template_text
from fmb.paths import ResultsLayout, partition_value
from fmb.prepare.payloads import prompt_id
from fmb.redact import Redactor

PART_ROWS = 500  # judge rows per Parquet part: a killed evaluation loses at most the rows not yet in a part


@dataclass(frozen=True)
class Response:
    """A successful, measured response of the run and what it is judged against."""

    run_id: str
    experiment: str
    payload_file: str
    concurrency: int
    request_index: int
    session: int
    prompt_id: str
    text: str
    ground_truth: Any = None
    question: str | None = None
    in_payload: bool = True  # False: the payload file holds no line with this prompt (prepared again since)

    def key(self, evaluation_id: str) -> dict[str, Any]:
        return {
            "evaluation_id": evaluation_id,
            "run_id": self.run_id,
            "experiment": self.experiment,
            "payload_file": self.payload_file,
            "concurrency": self.concurrency,
            "request_index": self.request_index,
            "session": self.session,
            "prompt_id": self.prompt_id,
        }


@dataclass
class EvaluationResult:
    evaluation_id: str
    run_id: str
    status: str = "running"
    responses: int = 0
    judge_calls: int = 0
    failed_calls: int = 0
    verdicts: dict[str, dict[str, int]] = field(default_factory=dict)  # judge -> verdict -> count
    settings_file: Path | None = None
    message: str | None = None


def new_evaluation_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def latest_run(layout: ResultsLayout, benchmark: str) -> str:
    """The run of the benchmark that started last, from the raw runs table."""
    pattern = str(layout.raw / "runs" / "*" / "*.parquet")
    try:
        found = (
            duckdb.connect()
            .execute(
                f"select run_id from read_parquet('{_quoted(pattern)}', union_by_name = true) "
                "where benchmark = ? and status <> 'running' order by started_at desc limit 1",
                [benchmark],
            )
            .fetchone()
        )
    except duckdb.Error:
        found = None
    if not found:
        raise FmbError(
            f"no run of benchmark {benchmark!r} in {layout.root}.",
            hint="Collect one first (fmb collect CONFIG), or name the results folder with --results.",
        )
    return str(found[0])


def check_run(layout: ResultsLayout, run_id: str, benchmark: str) -> None:
    """The run must be one of this config's benchmark, and finished: its payload files hold the ground truths."""
    pattern = str(layout.raw / "runs" / "*" / "*.parquet")
    try:
        found = (
            duckdb.connect()
            .execute(
                f"select benchmark, status from read_parquet('{_quoted(pattern)}', union_by_name = true) "
                "where run_id = ? order by started_at desc limit 1",
                [run_id],
            )
            .fetchone()
        )
    except duckdb.Error:
        found = None
    if not found:
        raise FmbError(f"run {run_id} is not in {layout.root}.", hint="fmb report lists the runs it knows.")
    if found[0] != benchmark:
        raise FmbError(
            f"run {run_id} is a run of benchmark {found[0]!r}, not of this config's {benchmark!r}.",
            hint="Evaluate it with the config it was collected with.",
        )
    if found[1] == "running":
        raise FmbError(f"run {run_id} is still running; evaluate it once it has ended.")


def _quoted(text: str) -> str:
    return text.replace("'", "''")


def responses(loaded: LoadedConfig, layout: ResultsLayout, run_id: str) -> list[Response]:
    """The run's successful measured responses, each with its prompt's ground truth and question."""
    pattern = str(layout.raw / "requests" / "*" / f"run_id={partition_value(run_id)}" / "*.parquet")
    try:
        rows = (
            duckdb.connect()
            .execute(
                f"""
            select experiment, payload_file, concurrency, request_index, session, prompt_id, completion_text
            from read_parquet('{_quoted(pattern)}', hive_partitioning = true, union_by_name = true)
            where status = 'ok' and not is_warmup and completion_text is not null
            qualify row_number() over (
                partition by experiment, payload_file, concurrency, request_index order by session desc
            ) = 1
            order by experiment, payload_file, concurrency, request_index
            """
            )
            .fetchall()
        )
    except duckdb.IOException:
        rows = []
    truth: dict[tuple[str, str], dict[str, Any]] = {}
    payload_dir = layout.payload_dir(loaded.name)
    for payload_file in sorted({r[1] for r in rows}):
        path = payload_dir / payload_file
        if not path.is_file():
            raise FmbError(
                f"payload file {path} of run {run_id} is gone: its ground truth cannot be read.",
                hint="Run `fmb prepare CONFIG` again with the same config and dataset.",
            )
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                prompt = record.get("inputs") or record.get("prompt") or ""
                truth[(payload_file, prompt_id(prompt))] = record
    out = []
    for experiment, payload_file, concurrency, index, session, pid, text in rows:
        record = truth.get((payload_file, pid))
        in_payload = record is not None
        record = record or {}
        out.append(
            Response(
                run_id,
                experiment,
                payload_file,
                int(concurrency),
                int(index),
                int(session or 0),
                pid,
                text,
                record.get("ground_truth"),
                record.get("question"),
                in_payload,
            )
        )
    return out


def ground_truth_text(value: Any) -> str | None:
    """The ground truth as the judges read it: a list of acceptable answers as a comma-separated list."""
    if value is None:
        return None
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


_PLACEHOLDERS = re.compile(r"\{(rules|question|answer|ground_truth)\}")


def fill_template(template: str, *, question: str | None, answer: str, ground_truth: str, rules: str) -> str:
    """FMBench's four placeholders, filled in one pass: braces elsewhere, and in the values, stay as they are."""
    values = {"question": question or "(no question given)", "answer": answer, "ground_truth": ground_truth}
    values["rules"] = rules
    return _PLACEHOLDERS.sub(lambda m: values[m.group(1)], template)


_VERDICT = re.compile(r'"verdict"\s*:\s*"\s*(correct|incorrect)\s*"', re.IGNORECASE)


def parse_verdict(text: str) -> tuple[str | None, str | None]:
    """(verdict, explanation) from a judge's answer: the JSON object FMBench's prompts ask for."""
    for match in re.finditer(r"\{.*?\}", text, re.DOTALL):
        try:
            data = json.loads(match.group(0))
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("verdict"), str):
            verdict = data["verdict"].strip().lower()
            if verdict in ("correct", "incorrect"):
                explanation = data.get("explanation")
                return verdict, str(explanation) if explanation is not None else None
    found = _VERDICT.search(text)  # a JSON object cut short, or with a stray character
    if found:
        return found.group(1).lower(), None
    return None, None


def judge_experiment(
    judge: Judge, settings: EvalSettings, loaded: LoadedConfig, layout: ResultsLayout
) -> ResolvedExperiment:
    """The judge as an experiment, so that any of fmb's targets can send to it."""
    subjective = settings.model_evaluations.subjective_eval_info
    parameters = {k: v for k, v in subjective.inference_parameters.items() if k != "caching"}
    if judge.experiment:
        return _experiment_as_judge(judge, parameters, loaded, layout)
    backend = judge.resolved_backend
    spec: dict[str, Any] = {
        "name": re.sub(r"[^A-Za-z0-9._-]+", "-", judge.model_id).strip("-") or "judge",
        "model_id": judge.model_id,
        "payload_files": ["judge.jsonl"],
        "concurrency_levels": [subjective.run_parallel_inference_count],
        "request_timeout_s": subjective.request_timeout_s,
        "max_attempts": subjective.max_attempts,
        "retry_backoff_s": subjective.retry_backoff_s,
        "region": judge.region,
        "api_key_env": judge.api_key_env,
    }
    if backend == "bedrock":
        spec |= {"ep_name": judge.ep_name or judge.model_id, "inference_script": "bedrock_predictor.py"}
        endpoint = spec["ep_name"]
    elif backend == "sagemaker":
        if not judge.ep_name:
            raise FmbError(f"judge {judge.model_id}: backend sagemaker needs ep_name (the endpoint's name).")
        spec |= {"ep_name": judge.ep_name, "inference_script": "sagemaker_predictor.py"}
        endpoint = judge.ep_name
    else:
        if not judge.endpoint_url:
            raise FmbError(f"judge {judge.model_id}: an OpenAI-compatible judge needs endpoint_url.")
        spec |= {"endpoint_url": judge.endpoint_url, "api": backend}
        endpoint = judge.endpoint_url
    if backend.startswith("openai"):
        parameters.setdefault("model", judge.model_id)
    return ResolvedExperiment(
        index=-1,
        spec=Experiment.model_validate(spec),
        backend=backend,
        stream=False,
        stream_source="judge calls are not streamed",
        endpoint=endpoint,
        parameters=parameters,
        instance_count=1,
    )


def _experiment_as_judge(
    judge: Judge, parameters: dict[str, Any], loaded: LoadedConfig, layout: ResultsLayout
) -> ResolvedExperiment:
    """One of the config's experiments as the judge: its back end and endpoint, the judge's parameters."""
    from dataclasses import replace

    from fmb.endpoints import resolve_endpoints

    try:
        exp = loaded.experiment(judge.experiment or "")
    except KeyError:
        names = ", ".join(e.name for e in loaded.experiments)
        raise FmbError(
            f"judge {judge.model_id}: experiment {judge.experiment!r} is not one of the config's ({names})."
        ) from None
    endpoint = resolve_endpoints(loaded, layout, (exp.name,))[exp.name].address
    return replace(exp, endpoint=endpoint, parameters=exp.parameters | parameters, stream=False)


class _PartWriter:
    """Rows of one raw table, written as numbered Parquet parts under the evaluation's folder."""

    def __init__(self, folder: Path, schema: Any) -> None:
        self.folder, self.schema, self.parts = folder, schema, 0
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= PART_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            write_atomic(self.rows, self.schema, self.folder / f"part-{self.parts:05d}.parquet")
            self.parts += 1
            self.rows = []


def evaluate(
    loaded: LoadedConfig,
    layout: ResultsLayout,
    console: Console,
    *,
    run_id: str | None = None,
    scorer: Any = None,
) -> EvaluationResult:
    """Judge every successful measured response of the run (default: the benchmark's latest)."""
    from fmb.collector.recovery import recover_abandoned

    recover_abandoned(layout)
    settings, settings_file = load_settings(loaded)
    evaluations = settings.model_evaluations
    run_id = run_id or latest_run(layout, loaded.name)
    check_run(layout, run_id, loaded.name)
    judges = evaluations.subjective_eval_info.judge_panel_list
    for judge in judges:  # every judge's settings checked before anything is scored or recorded
        try:
            judge_experiment(judge, settings, loaded, layout)
        except ValidationError as err:
            problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()[:3])
            raise FmbError(f"judge {judge.model_id} in {settings_file}: {problem}.") from None
    found = responses(loaded, layout, run_id)
    evaluation_id = new_evaluation_id()
    result = EvaluationResult(evaluation_id, run_id, responses=len(found), settings_file=settings_file)
    rules = instructions_text(loaded, settings)
    templates = {judge.model_id: template_text(loaded, settings, judge) for judge in judges}
    started = datetime.now(UTC)
    quantitative = evaluations.quantitative_eval_info

    def write_run(status: str, message: str | None = None, ended: bool = False) -> None:
        row = {
            "evaluation_id": evaluation_id,
            "run_id": run_id,
            "started_at": started,
            "ended_at": datetime.now(UTC) if ended else None,
            "status": status,
            "status_message": loaded.redactor()(message) if message else None,
            "method": evaluations.PoLL_Composition_and_Voting.method,
            "use_quantitative_metrics": evaluations.PoLL_Composition_and_Voting.use_quantitative_metrics,
            "correct_cosine_threshold": quantitative.correct_verdict_cosine_similarity_threshold,
            "incorrect_cosine_threshold": quantitative.incorrect_verdict_cosine_similarity_threshold,
            "embeddings_model": getattr(scorer, "model_name", None),
            "judges_json": json.dumps(
                [
                    {"model_id": j.model_id, "backend": j.resolved_backend, "prompt_template": templates[j.model_id][1]}
                    for j in judges
                ]
            ),
            "eval_config": str(settings_file),
        }
        write_atomic([row], EVALUATION_RUNS, layout.evaluation_run_path(run_id, evaluation_id))

    if not found:
        raise FmbError(
            f"run {run_id} has no successful measured response to evaluate.",
            hint="Check the run's errors in its report (request_errors), or collect again.",
        )
    not_in_payload = sum(1 for r in found if not r.in_payload)
    if not_in_payload == len(found):
        raise FmbError(
            f"none of run {run_id}'s prompts is in its payload files any more: they were prepared again since.",
            hint="Prepare them as they were (same config and dataset), or collect a new run and evaluate that.",
        )
    missing_truth = sum(1 for r in found if r.ground_truth is None)
    if missing_truth == len(found):
        raise FmbError(
            f"none of run {run_id}'s prompts has a ground truth in its payload file.",
            hint="Set datasets.ground_truth_col_key (e.g. answers) and run `fmb prepare CONFIG` and "
            "`fmb collect CONFIG` again.",
        )
    write_run("running")
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        scores = _PartWriter(layout.evaluation_dir("evaluation_scores", run_id, evaluation_id), EVALUATION_SCORES)
        with_truth = [r for r in found if r.ground_truth is not None]
        if scorer is None and evaluations.PoLL_Composition_and_Voting.use_quantitative_metrics:
            scorer = embeddings_provider(settings, console, loaded)
        scored = _score(with_truth, scorer)
        for response, row in zip(with_truth, scored, strict=True):
            scores.add(response.key(evaluation_id) | row)
        scores.flush()
        calls = _PartWriter(layout.evaluation_dir("evaluations", run_id, evaluation_id), EVALUATIONS)
        asyncio.run(
            _judge_all(loaded, settings, judges, templates, rules, with_truth, calls, result, evaluation_id, layout)
        )
        calls.flush()
    except (KeyboardInterrupt, asyncio.CancelledError):
        result.status, result.message = "interrupted", "stopped by the user (Ctrl-C or SIGTERM)"
        write_run(result.status, result.message, ended=True)
        raise KeyboardInterrupt from None
    except BaseExceptionGroup as group:  # an error inside a judging worker
        first = group.exceptions[0]
        write_run("failed", f"{type(first).__name__}: {first}", ended=True)
        raise first from None
    except FmbError as exc:
        result.status, result.message = "failed", exc.message
        write_run("failed", exc.message, ended=True)
        raise
    except Exception as exc:
        write_run("failed", f"{type(exc).__name__}: {exc}", ended=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, sigterm)  # asyncio.run leaves the default handler behind
    if result.judge_calls and result.failed_calls == result.judge_calls:
        result.status = "failed"
        result.message = "no judge call returned a verdict; the evaluation does not count (see raw/evaluations)"
        write_run("failed", result.message, ended=True)
        raise FmbError(
            f"evaluation {evaluation_id} of run {run_id}: {result.message}.",
            hint="Check the judges' endpoints, credentials and prompt templates; every call is a row with its error.",
        )
    result.status = "completed"
    if missing_truth:
        result.message = f"{missing_truth} response(s) had no ground truth and were not judged" + (
            f" ({not_in_payload} of them: the prompt is no longer in its payload file)" if not_in_payload else ""
        )
    write_run("completed", result.message, ended=True)
    return result


def embeddings_provider(settings: EvalSettings, console: Console, loaded: LoadedConfig) -> Any:
    """The embeddings model the settings name, or, when that one is not on this machine, the one fmb carries.

    FMBench's settings name sentence-transformers/all-mpnet-base-v2, which fmb cannot fetch at
    run time; the model fmb carries (all-MiniLM-L6-v2) stands in, the console says so, and the
    scores and the evaluation record which model made them (embeddings_model).
    """
    from fmb.evaluate import scores

    named = settings.model_evaluations.quantitative_eval_info.embeddings_model_id
    backend = named.resolved_backend
    if backend in ("bedrock", "sagemaker"):
        from fmb.aws import client

        if backend == "bedrock":
            return scores.BedrockEmbeddings(named.model_id, client("bedrock-runtime", loaded, named.region))
        if not named.ep_name:
            raise FmbError("embeddings_model_id: backend sagemaker needs ep_name (the endpoint's name).")
        return scores.SageMakerEmbeddings(named.ep_name, client("sagemaker-runtime", loaded, named.region))
    api_key = os.environ.get(named.api_key_env) if named.api_key_env else None
    try:
        return scores.load_embeddings(named.model_id, endpoint_url=named.endpoint_url, api_key=api_key)
    except FmbError as exc:
        if backend != "local":
            raise
        fallback = next(iter(scores.BUNDLED_MODELS))
        try:
            provider = scores.load_embeddings(fallback)
        except FmbError:
            raise exc from None
        console.print(
            f"[yellow]note:[/] embeddings model {escape(named.model_id)} is not on this machine; cosine "
            f"similarity uses {fallback}, which fmb carries (the scores record which model made them).",
            highlight=False,
            soft_wrap=True,
        )
        return provider


def _score(found: list[Response], embeddings: Any) -> list[dict[str, Any]]:
    """The quantitative scores of every response (cosine similarity only with an embeddings model)."""
    from fmb.evaluate import scores

    rows = scores.score_batch([(r.text, r.ground_truth) for r in found], embeddings)
    name = embeddings.model_name if embeddings is not None else None
    return [
        {
            "ground_truth": ground_truth_text(r.ground_truth),
            "question": r.question,
            "cosine_similarity": s.cosine_similarity,
            "levenshtein_ratio": s.levenshtein_ratio,
            "token_set_ratio": s.token_set_ratio,
            "exact_match": s.exact_match,
            "token_f1": s.token_f1,
            "embeddings_model": name if s.cosine_similarity is not None else None,
        }
        for r, s in zip(found, rows, strict=True)
    ]


async def _judge_all(
    loaded: LoadedConfig,
    settings: EvalSettings,
    judges: list[Judge],
    templates: dict[str, tuple[str, str]],
    rules: str,
    found: list[Response],
    calls: _PartWriter,
    result: EvaluationResult,
    evaluation_id: str,
    layout: ResultsLayout,
) -> None:
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if main is not None:
        try:
            loop.add_signal_handler(signal.SIGTERM, main.cancel)
        except (NotImplementedError, RuntimeError):
            pass
    subjective = settings.model_evaluations.subjective_eval_info
    policy = Policy(subjective.request_timeout_s, subjective.max_attempts, subjective.retry_backoff_s)
    # One redactor for what the rows keep: the config's secrets and the judges' API keys.
    keys = [os.environ[j.api_key_env] for j in judges if j.api_key_env and os.environ.get(j.api_key_env)]
    config_redact = loaded.redactor()
    redact = Redactor([*config_redact.secrets, *keys], config_redact.words)
    targets: dict[str, Target] = {}
    try:
        for judge in judges:
            exp = judge_experiment(judge, settings, loaded, layout)
            targets[judge.model_id] = make_target(exp, loaded, max_connections=subjective.run_parallel_inference_count)
        jobs = [(judge, response) for response in found for judge in judges]
        queue: asyncio.Queue[tuple[Judge, Response]] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)

        async def worker() -> None:
            while True:
                try:
                    judge, response = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                template, template_name = templates[judge.model_id]
                prompt = fill_template(
                    template,
                    question=response.question,
                    answer=response.text,
                    ground_truth=ground_truth_text(response.ground_truth) or "",
                    rules=rules,
                )
                request = Request(prompt_id(prompt), prompt, {"inputs": prompt})
                rec = Recorder()
                usage, failure = await send_one(targets[judge.model_id], request, policy, rec)
                verdict, explanation = parse_verdict(rec.text) if failure is None else (None, None)
                status, error_type, message = "ok", None, None
                if failure is not None:
                    status, error_type, message = failure.status, failure.error_type, failure.message
                elif verdict is None:
                    error_type, message = "no_verdict", f"the judge's answer holds no verdict: {rec.text[:200]!r}"
                assert rec.start_ns is not None and rec.end_ns is not None and rec.start_wall_ns is not None
                calls.add(
                    response.key(evaluation_id)
                    | {
                        "judge": judge.model_id,
                        "judge_backend": judge.resolved_backend,
                        "prompt_template": template_name,
                        "status": status,
                        "verdict": verdict,
                        "explanation": redact.shortened(explanation, 500) if explanation else None,
                        "error_type": error_type,
                        "error_message": redact.shortened(message, 300) if message else None,
                        "prompt_tokens": usage.prompt_tokens if usage else None,
                        "completion_tokens": usage.completion_tokens if usage else None,
                        "latency_ms": (rec.end_ns - rec.start_ns) / 1e6,
                        "attempts": rec.attempts,
                        "started_at": datetime.fromtimestamp(rec.start_wall_ns / 1e9, UTC),
                    }
                )
                result.judge_calls += 1
                if failure is not None or verdict is None:
                    result.failed_calls += 1
                label = verdict or (status if failure is not None else "no verdict")
                counts = result.verdicts.setdefault(judge.model_id, {})
                counts[label] = counts.get(label, 0) + 1

        async with asyncio.TaskGroup() as group:
            for _ in range(subjective.run_parallel_inference_count):
                group.create_task(worker())
    finally:
        for target in targets.values():
            await target.close()
