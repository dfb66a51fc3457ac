"""The dbt warehouse against raw rows written by the collector's own writer.

Every mart value checked here is computed again in Python from the same raw Parquet
(pyarrow, no SQL), so a wrong formula in a model shows up as a mismatch.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import yaml

from fmb.collector.schemas import REQUESTS, TABLES
from fmb.paths import PROJECT_ROOT
from fmb.warehouse.build import build, warehouse_path
from tests.rawdata import query, write_run

pytestmark = pytest.mark.slow  # servers in subprocesses, dbt builds or a real model

MARTS = [
    "cells",
    "recommendations",
    "latency_by_prompt_size",
    "latency_histograms",
    "run_comparisons",
    "experiment_runs",
    "runs",
    "request_errors",
    "cell_spreads",
    "accuracy",
    "accuracy_by_payload_file",
    "accuracy_by_experiment",
    "judge_agreement",
    "judge_pair_agreement",
    "evaluation_cost",
    "evaluations",
]


def test_sources_declare_exactly_the_collector_schemas() -> None:
    sources = yaml.safe_load((PROJECT_ROOT / "dbt_project" / "models" / "sources.yml").read_text())
    (raw,) = sources["sources"]
    declared = {t["name"]: [c["name"] for c in t["columns"]] for t in raw["tables"]}
    assert declared == {name: schema.names for name, schema in TABLES.items()}
    for table in raw["tables"]:
        for column in table["columns"]:
            field = TABLES[table["name"]].field(column["name"])
            assert column["description"] == field.metadata[b"description"].decode()


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (what quantile_cont computes), written out."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("wh")
    results = tmp / "results"
    runs = [write_run(tmp, results, seed, datetime(2026, 1, seed, tzinfo=UTC)) for seed in (1, 2)]
    build(results)
    return results, runs


def marts(results: Path, name: str) -> list[dict]:
    return query(warehouse_path(results), f"select * from {name}")


def raw_requests(results: Path) -> list[dict]:
    """The raw rows, with the token counts the metrics use: the server's if given, else the client's."""
    rows = (
        pads.dataset(results / "raw" / "requests", format="parquet", partitioning="hive")
        .to_table(columns=REQUESTS.names)
        .to_pylist()
    )
    for row in rows:
        for kind in ("prompt", "completion"):
            server = row[f"{kind}_tokens_server"]
            row[f"{kind}_tokens"] = server if server is not None else row[f"{kind}_tokens_client"]
    return rows


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def test_cells_match_an_independent_computation(warehouse) -> None:
    results, _ = warehouse
    cells = {(c["run_id"], c["experiment"], c["payload_file"], c["concurrency"]): c for c in marts(results, "cells")}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in raw_requests(results):
        if not row["is_warmup"] and row["status"] != "cancelled":
            groups[(row["run_id"], row["experiment"], row["payload_file"], row["concurrency"])].append(row)
    assert set(groups) == set(cells)
    hourly = {"priced": 1.4084 * 2}
    for key, rows in groups.items():
        cell = cells[key]
        ok = [r for r in rows if r["status"] == "ok"]
        failed = [r for r in rows if r["status"] != "ok"]
        assert cell["count_requests"] == len(rows)
        assert cell["count_successful_requests"] == len(ok)
        assert close(cell["error_rate"], len(failed) / len(rows))
        for q, label in ((0.5, "p50"), (0.9, "p90"), (0.95, "p95"), (0.99, "p99")):
            assert close(cell[f"e2e_latency_{label}_ms"], quantile([r["e2e_latency_ms"] for r in ok], q))
            assert close(cell[f"ttft_{label}_ms"], quantile([r["ttft_ms"] for r in ok], q))
            tpots = [
                (r["ttlt_ms"] - r["ttft_ms"]) / (r["completion_tokens"] - 1) for r in ok if r["completion_tokens"] > 1
            ]
            assert close(cell[f"tpot_{label}_ms"], quantile(tpots, q))
        window = (max(r["ended_at"] for r in rows) - min(r["started_at"] for r in rows)).total_seconds()
        assert close(cell["window_s"], window)
        assert close(cell["requests_per_s"], len(ok) / window)
        assert close(cell["transactions_per_minute"], 60 * len(ok) / window)
        completion = sum(r["completion_tokens"] for r in ok)
        prompt = sum(r["prompt_tokens"] for r in ok)
        assert close(cell["output_tokens_per_s"], completion / window)
        mismatches = [
            r["prompt_tokens_server"] != r["prompt_tokens_client"]
            for r in rows
            if r["prompt_tokens_server"] is not None
        ]
        assert close(cell["prompt_token_mismatch_rate"], sum(mismatches) / len(mismatches))
        experiment = key[1]
        if experiment == "priced":
            cost = hourly["priced"] * window / 3600
        elif experiment == "tokens":
            cost = prompt / 1000 * 0.0003 + completion / 1000 * 0.0006
        else:
            assert cell["price_status"] == "no_price_for_instance_type" and cell["is_priced"] is False
            assert cell["cost_per_10k_txn_usd"] is None
            continue
        assert cell["price_status"] == "priced"
        assert close(cell["cell_cost_usd"], cost)
        assert close(cell["price_per_txn_usd"], cost / len(ok))
        assert close(cell["cost_per_10k_txn_usd"], 10000 * cost / len(ok))
        assert close(cell["cost_for_txn_count_usd"], 1000 * cost / len(ok))
        assert close(cell["cost_per_1m_output_tokens_usd"], 1e6 * cost / completion)


def test_recommendations_follow_the_rule(warehouse) -> None:
    results, runs = warehouse
    cells = [c for c in marts(results, "cells") if "en_1-100" in c["payload_file"]]
    recs = marts(results, "recommendations")
    assert len(recs) == len(cells)
    for run_id in runs:
        mine = [c for c in cells if c["run_id"] == run_id]
        feasible = [
            c
            for c in mine
            if c["e2e_latency_p95_ms"] <= 1500
            and c["error_rate"] <= 0.2
            and c["cost_per_10k_txn_usd"] is not None
            and c["cost_per_10k_txn_usd"] <= 50
        ]
        best = [r for r in recs if r["run_id"] == run_id and r["is_best_overall"]]
        if feasible:
            expected = min(feasible, key=lambda c: (c["cost_per_10k_txn_usd"], -c["transactions_per_minute"]))
            assert [(b["experiment"], b["concurrency"]) for b in best] == [
                (expected["experiment"], expected["concurrency"])
            ]
        else:
            assert best == []
            assert 1 <= sum(r["is_nearest_miss"] for r in recs if r["run_id"] == run_id) <= 3
        unpriced = [r for r in recs if r["run_id"] == run_id and r["experiment"] == "unpriced"]
        assert unpriced and all("cost" in r["budgets_broken"] for r in unpriced)


def test_costs_and_runs(warehouse) -> None:
    results, runs = warehouse
    raw = raw_requests(results)
    experiment_runs = {(e["run_id"], e["experiment"]): e for e in marts(results, "experiment_runs")}
    for (run_id, experiment), row in experiment_runs.items():
        mine = [r for r in raw if r["run_id"] == run_id and r["experiment"] == experiment]
        duration = (max(r["ended_at"] for r in mine) - min(r["started_at"] for r in mine)).total_seconds()
        assert close(row["duration_s"], duration)
        assert row["count_requests_sent"] == len(mine)
        if experiment == "priced":
            assert close(row["experiment_cost_usd"], 1.4084 * 2 * duration / 3600)
        elif experiment == "unpriced":
            assert row["experiment_cost_usd"] is None and row["is_priced"] is False
    run_rows = {r["run_id"]: r for r in marts(results, "runs")}
    assert set(run_rows) == set(runs)
    for run_id, row in run_rows.items():
        priced = [e["experiment_cost_usd"] for (r, _), e in experiment_runs.items() if r == run_id and e["is_priced"]]
        assert close(row["run_cost_usd"], sum(priced))
        assert row["count_unpriced_experiments"] == 1


def test_run_comparisons_pair_each_run_with_the_previous(warehouse) -> None:
    results, (first, second) = warehouse
    rows = marts(results, "run_comparisons")
    cells = {(c["run_id"], c["experiment"], c["payload_file"], c["concurrency"]): c for c in marts(results, "cells")}
    later = [r for r in rows if r["run_id"] == second]
    assert later and all(r["previous_run_id"] == first for r in later)
    for r in later:
        before = cells[(first, r["experiment"], r["payload_file"], r["concurrency"])]
        now = cells[(second, r["experiment"], r["payload_file"], r["concurrency"])]
        assert close(
            r["e2e_latency_p95_change_pct"], 100 * (now["e2e_latency_p95_ms"] / before["e2e_latency_p95_ms"] - 1)
        )


def test_latency_by_prompt_size_buckets(warehouse) -> None:
    results, _ = warehouse
    buckets = marts(results, "latency_by_prompt_size")
    ok = [r for r in raw_requests(results) if r["status"] == "ok" and not r["is_warmup"]]
    for b in buckets:
        mine = [
            r["e2e_latency_ms"]
            for r in ok
            if r["run_id"] == b["run_id"]
            and r["experiment"] == b["experiment"]
            and r["concurrency"] == b["concurrency"]
            and b["prompt_tokens_bucket_start"] <= r["prompt_tokens"] < b["prompt_tokens_bucket_end"]
        ]
        assert b["count_successful_requests"] == len(mine)
        assert close(b["e2e_latency_p95_ms"], quantile(mine, 0.95))


def test_latency_histograms_hold_every_successful_request(warehouse) -> None:
    results, _ = warehouse
    bins = marts(results, "latency_histograms")
    ok = [r for r in raw_requests(results) if r["status"] == "ok" and not r["is_warmup"]]
    assert sum(b["count_successful_requests"] for b in bins) == len(ok)
    for b in bins[:50]:
        inside = [
            r
            for r in ok
            if (r["run_id"], r["experiment"], r["payload_file"], r["concurrency"])
            == (b["run_id"], b["experiment"], b["payload_file"], b["concurrency"])
            and b["latency_bin_lower_ms"] <= r["e2e_latency_ms"] < b["latency_bin_upper_ms"]
        ]
        assert len(inside) == b["count_successful_requests"]


def test_errors_are_counted_per_kind(warehouse) -> None:
    results, _ = warehouse
    total = sum(e["count_failed_requests"] for e in marts(results, "request_errors"))
    assert total == sum(
        1 for r in raw_requests(results) if r["status"] in ("error", "timeout", "throttled") and not r["is_warmup"]
    )


def test_mart_parquet_opens_without_dbt(warehouse) -> None:
    pandas = pytest.importorskip("pandas")
    results, _ = warehouse
    for name in MARTS:
        path = results / "marts" / name / f"{name}.parquet"
        table = pq.read_table(path)
        frame = pandas.read_parquet(path)
        count = duckdb.sql(f"select count(*) from read_parquet('{path}')").fetchall()[0][0]
        assert table.num_rows == len(frame) == count == len(marts(results, name))
    # Plain types a BI tool understands (no 128-bit integers).
    assert all(
        str(f.type) != "decimal128(38, 0)" for f in pq.read_schema(results / "marts" / "cells" / "cells.parquet")
    )


def test_a_second_build_gives_the_same_tables(warehouse) -> None:
    results, _ = warehouse
    before = {name: sorted(map(repr, marts(results, name))) for name in MARTS}
    build(results)
    after = {name: sorted(map(repr, marts(results, name))) for name in MARTS}
    assert before == after


def test_build_without_runs_is_a_clear_error(tmp_path: Path) -> None:
    from fmb.errors import FmbError

    with pytest.raises(FmbError, match="no run in"):
        build(tmp_path / "results")


# Columns the collector writes today that an older fmb's files lack (the load modes' and the SLOs').
NEWER_COLUMNS = {
    "requests": ["scheduled_at", "send_lateness_ms"],
    "experiments": [
        "config_experiment", "load_mode", "request_rate_per_s", "burstiness", "trace_speedup", "max_in_flight",
        "ramp_up_s", "arrival_seed", "knee_min_throughput_gain", "knee_min_slo_attainment", "lateness_threshold_ms",
        "slo_ttft_ms", "slo_tpot_ms", "slo_e2e_latency_ms",
    ],
    "cells": ["skip_reason"],
}  # fmt: skip


def test_results_of_an_older_fmb_build_into_the_same_marts(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_run(tmp_path, results, 3, datetime(2026, 1, 3, tzinfo=UTC))
    build(results)
    assert not list((results / "raw").rglob("fmb-columns.parquet"))  # today's files need no stub
    before = {name: sorted(map(repr, marts(results, name))) for name in MARTS}
    for table, columns in NEWER_COLUMNS.items():
        for path in (results / "raw" / table).rglob("*.parquet"):
            old = pq.read_table(path)
            pq.write_table(old.drop_columns([c for c in columns if c in old.column_names]), path)
    build(results)
    after = {name: sorted(map(repr, marts(results, name))) for name in MARTS}
    assert after == before
    stubs = sorted(p.relative_to(results / "raw").parts[0] for p in (results / "raw").rglob("fmb-columns.parquet"))
    assert stubs == sorted(NEWER_COLUMNS)
