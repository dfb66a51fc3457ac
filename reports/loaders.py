"""Loaders: the report's data, selected from the marts of the warehouse, one run at a time.

Every function here is a SELECT over marts (or, for the metric definitions, the dbt docs
blocks); nothing is computed that a mart does not already hold.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from fmb.errors import FmbError
from fmb.paths import ACCURACY_DOCS, METRIC_DOCS

_DOCS_BLOCK = re.compile(r"{%\s*docs\s+(\w+)\s*%}(.*?){%\s*enddocs\s*%}", re.S)

Row = dict[str, Any]


@dataclass
class Accuracy:
    """The accuracy marts of a run's evaluation (the latest completed `fmb evaluate`)."""

    evaluation: Row
    cells: list[Row]
    by_payload_file: list[Row]
    by_experiment: list[Row]
    judges: list[Row]
    judge_pairs: list[Row]
    cost: list[Row]
    definitions: list[tuple[str, str]]


@dataclass
class Telemetry:
    """What was sampled beside the run's requests: server state per cell, timelines, CloudWatch figures."""

    cells: list[Row]  # server_states: one row per cell of the run
    timelines: list[Row]  # run_timelines: one row per experiment and time bucket
    endpoint_metrics: list[Row]  # endpoint_metrics: CloudWatch figures per experiment, metric and statistic

    @property
    def saturated(self) -> list[Row]:
        """The cells whose client (fmb itself) was saturated."""
        return [c for c in self.cells if c["is_client_saturated"]]

    @property
    def sampled(self) -> list[Row]:
        """The cells with any server, host or client sample."""
        return [
            c
            for c in self.cells
            if c["count_server_samples"] or c["count_client_samples"] or c["host_cpu_mean_percent"] is not None
        ]

    @property
    def has_server_metrics(self) -> bool:
        return any(c["count_server_samples"] for c in self.cells)

    @property
    def disagreements(self) -> list[Row]:
        return [c for c in self.cells if c["is_tokens_per_s_disagreement"]]


@dataclass
class ReportData:
    run: Row
    cells: list[Row]
    candidates: list[Row]
    best: Row | None
    best_per_instance_type: list[Row]
    unranked_instance_types: list[Row]  # instance types none of whose cells could be ranked
    nearest_misses: list[Row]
    errors: list[Row]
    experiment_runs: list[Row]
    prompt_size: list[Row]
    histograms: list[Row]
    comparisons: list[Row]
    spreads: list[Row] = field(default_factory=list)  # cells of the run's group, when it has several runs
    curves: list[Row] = field(default_factory=list)  # load_curves: the levels of curves with two or more
    definitions: list[tuple[str, str]] = field(default_factory=list)
    accuracy: Accuracy | None = None  # the run's evaluation (`fmb evaluate`), when it has a completed one
    telemetry: Telemetry | None = None  # what was sampled beside the requests, when anything was

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.run["config_json"] or "{}")

    @property
    def load_levels(self) -> list[Row]:
        """The cells sent at scheduled times (open loop and trace replay)."""
        return [c for c in self.cells if c["load_mode"] not in ("closed", "waves")]


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[Row]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def connect(warehouse: Path) -> duckdb.DuckDBPyConnection:
    if not warehouse.is_file():
        raise FmbError(
            f"no warehouse at {warehouse}.",
            hint="Build it first: `fmb build --results DIR` (or `dbt build` from a clone's root).",
        )
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
        con.execute("select 1 from runs limit 1")
    except duckdb.Error as exc:
        raise FmbError(f"{warehouse} is not a built fmb warehouse ({exc}).", hint="Run `fmb build` again.") from None
    return con


def resolve_run_id(con: duckdb.DuckDBPyConnection, run_id: str | None, benchmark: str | None = None) -> str:
    """The run asked for, or the latest one (of ``benchmark``, when given)."""
    if run_id is None:
        where, params = ("where benchmark = ?", [benchmark]) if benchmark else ("", [])
        latest = _rows(con, f"select run_id from runs {where} order by started_at desc, run_id desc limit 1", params)
        if not latest:
            raise FmbError(
                f"the warehouse holds no run{f' of {benchmark}' if benchmark else ''} yet.",
                hint="Run `fmb collect CONFIG`, then `fmb build`.",
            )
        return latest[0]["run_id"]
    if not _rows(con, "select run_id from runs where run_id = ?", [run_id]):
        recent = [r["run_id"] for r in _rows(con, "select run_id from runs order by started_at desc limit 5", [])]
        raise FmbError(
            f"run {run_id!r} is not in the warehouse.",
            hint=f"Recent runs: {', '.join(recent) or 'none'}. Rebuild with `fmb build` after collecting.",
        )
    return run_id


def definitions(path: Path = METRIC_DOCS) -> list[tuple[str, str]]:
    """The metric definitions: the dbt docs blocks (of the clone or the installed package), name and text."""
    text = path.read_text(encoding="utf-8")
    return [(name, " ".join(body.split())) for name, body in _DOCS_BLOCK.findall(text)]


_CANDIDATE_COLUMNS = """
    r.experiment, r.payload_file, r.concurrency, r.instance_type, r.instance_count,
    r.is_feasible, r.budgets_broken, r.count_budgets_broken, r.feasible_rank, r.instance_type_rank, r.miss_rank,
    r.is_best_overall, r.is_best_for_instance_type, r.is_nearest_miss, r.is_nearest_miss_for_instance_type,
    r.is_eligible, r.ineligible_reason, r.selection_rule, r.min_requests_for_best, c.is_cut_short,
    c.is_percentile_from_few_requests, c.is_p99_from_few_requests,
    r.meets_latency_budget, r.meets_cost_budget, r.meets_error_rate_budget,
    c.error_rate, c.count_requests, c.count_successful_requests,
    c.prompt_tokens_mean, c.completion_tokens_mean, c.input_tokens_per_s, c.output_tokens_per_s,
    c.e2e_latency_mean_ms, c.e2e_latency_p50_ms, c.e2e_latency_p95_ms, c.e2e_latency_p99_ms,
    c.ttft_p50_ms, c.ttft_p95_ms, c.ttft_p99_ms, c.tpot_p50_ms, c.tpot_p95_ms, c.tpot_p99_ms,
    c.transactions_per_minute, c.requests_per_s, c.price_per_txn_usd, c.cost_per_10k_txn_usd,
    c.cost_for_txn_count_usd, c.cost_per_1m_output_tokens_usd, c.price_status, c.is_streamed, c.backend,
    r.accuracy, r.accuracy_budget, r.is_accuracy_unknown, r.meets_accuracy_budget,
    a.count_judged_responses, a.count_correct_responses, a.count_incorrect_responses, a.count_needs_review_responses
"""


def load(warehouse: Path, run_id: str | None = None, benchmark: str | None = None) -> ReportData:
    con = connect(warehouse)
    try:
        run_id = resolve_run_id(con, run_id, benchmark)
        (run,) = _rows(con, "select * from runs where run_id = ?", [run_id])
        candidates_sql = (
            f"select {_CANDIDATE_COLUMNS} from recommendations r join cells c "
            "using (run_id, experiment, payload_file, concurrency) "
            "left join accuracy a using (run_id, experiment, payload_file, concurrency) where r.run_id = ? "
        )
        candidates = _rows(con, candidates_sql + "order by r.experiment, r.payload_file, r.concurrency", [run_id])
        best = _rows(con, candidates_sql + "and r.is_best_overall", [run_id])
        return ReportData(
            run=run,
            cells=_rows(
                con,
                "select * from cells where run_id = ? order by experiment, payload_file, concurrency",
                [run_id],
            ),
            candidates=candidates,
            best=best[0] if best else None,
            best_per_instance_type=_rows(
                con,
                candidates_sql + "and (r.is_best_for_instance_type or r.is_nearest_miss_for_instance_type)"
                " order by r.is_best_for_instance_type desc, r.feasible_rank, r.instance_type_miss_rank,"
                " r.instance_type",
                [run_id],
            ),
            unranked_instance_types=_rows(
                con,
                "select instance_type, min(instance_count) as instance_count,"
                " min(min_requests_for_best) as min_requests_for_best from recommendations where run_id = ?"
                " group by instance_type"
                " having not bool_or(is_best_for_instance_type or is_nearest_miss_for_instance_type)"
                " order by instance_type nulls last",
                [run_id],
            ),
            nearest_misses=_rows(con, candidates_sql + "and r.is_nearest_miss order by r.miss_rank", [run_id]),
            errors=_rows(
                con,
                "select experiment, payload_file, concurrency, status, error_type, http_status, count_failed_requests,"
                " example_error_message from request_errors where run_id = ?"
                " order by experiment, payload_file, concurrency, count_failed_requests desc",
                [run_id],
            ),
            experiment_runs=_rows(con, "select * from experiment_runs where run_id = ? order by experiment", [run_id]),
            prompt_size=_rows(
                con,
                "select * from latency_by_prompt_size where run_id = ?"
                " order by experiment, concurrency, prompt_tokens_bucket_start",
                [run_id],
            ),
            histograms=_rows(
                con,
                "select * from latency_histograms where run_id = ?"
                " order by experiment, payload_file, concurrency, latency_bin",
                [run_id],
            ),
            comparisons=_rows(
                con,
                "select * from run_comparisons where run_id = ? and previous_run_id is not null"
                " order by experiment, payload_file, concurrency",
                [run_id],
            ),
            spreads=_rows(
                con,
                "select * from cell_spreads where run_group = ? and count_runs > 1"
                " order by experiment, payload_file, concurrency",
                [run["run_group"]],
            ),
            curves=_rows(
                con,
                "select * from load_curves where run_id = ? and count_levels > 1"
                " order by config_experiment, payload_file, level_rank",
                [run_id],
            ),
            definitions=definitions(),
            accuracy=_accuracy(con, run_id, run["evaluation_id"]) if run["evaluation_id"] is not None else None,
            telemetry=_telemetry(con, run_id),
        )
    finally:
        con.close()


def _accuracy(con: duckdb.DuckDBPyConnection, run_id: str, evaluation_id: str) -> Accuracy:
    (evaluation,) = _rows(con, "select * from evaluations where evaluation_id = ?", [evaluation_id])
    return Accuracy(
        evaluation=evaluation,
        cells=_rows(
            con, "select * from accuracy where run_id = ? order by experiment, payload_file, concurrency", [run_id]
        ),
        by_payload_file=_rows(
            con, "select * from accuracy_by_payload_file where run_id = ? order by experiment, payload_file", [run_id]
        ),
        by_experiment=_rows(con, "select * from accuracy_by_experiment where run_id = ? order by experiment", [run_id]),
        judges=_rows(con, "select * from judge_agreement where run_id = ? order by judge", [run_id]),
        judge_pairs=_rows(
            con, "select * from judge_pair_agreement where run_id = ? order by judge_a, judge_b", [run_id]
        ),
        cost=_rows(con, "select * from evaluation_cost where run_id = ? order by judge", [run_id]),
        definitions=definitions(ACCURACY_DOCS),
    )


def _telemetry(con: duckdb.DuckDBPyConnection, run_id: str) -> Telemetry | None:
    """The run's telemetry marts; None when nothing was sampled beside its requests."""
    try:
        con.execute("select 1 from server_states limit 0")
    except duckdb.CatalogException:
        raise FmbError(
            "the warehouse was built by an older fmb: it has no telemetry marts (server_states).",
            hint="Build it again with `fmb build` (the raw tables are all it needs).",
        ) from None
    telemetry = Telemetry(
        cells=_rows(
            con,
            "select * from server_states where run_id = ? order by experiment, payload_file, concurrency",
            [run_id],
        ),
        timelines=_rows(
            con, "select * from run_timelines where run_id = ? order by experiment, bucket_started_at", [run_id]
        ),
        endpoint_metrics=_rows(
            con,
            "select * from endpoint_metrics where run_id = ? order by experiment, namespace, metric, stat",
            [run_id],
        ),
    )
    if not telemetry.sampled and not telemetry.endpoint_metrics:
        return None
    return telemetry
