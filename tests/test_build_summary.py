"""`fmb build` says what it built in words: models built and tests passed, not dbt's statuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fmb.cli import cli
from fmb.warehouse.build import BuildResult
from tests.rawdata import write_run


@pytest.mark.parametrize(
    ("by_type", "said"),
    [
        (
            {("model", "success"): 17, ("test", "pass"): 92, ("unit_test", "pass"): 7},
            "17 models built, 99 tests passed",
        ),
        ({("model", "success"): 1, ("test", "pass"): 1}, "1 model built, 1 test passed"),
        (
            {
                ("seed", "success"): 2,
                ("snapshot", "success"): 1,
                ("model", "success"): 3,
                ("test", "pass"): 4,
                ("test", "warn"): 2,
                ("unit_test", "skipped"): 1,
                ("model", "skipped"): 2,
            },
            "3 models built, 2 seeds loaded, 1 snapshot taken, 4 tests passed, 2 tests warned, 3 nodes skipped",
        ),
        ({}, "nothing to build"),
    ],
)
def test_the_summary_counts_node_types(by_type: dict, said: str) -> None:
    assert BuildResult(by_type=by_type).summary() == said


@pytest.mark.slow
def test_fmb_build_says_models_built_and_tests_passed(tmp_path: Path, cli_runner) -> None:
    results = tmp_path / "results"
    write_run(tmp_path, results, 3, datetime(2026, 2, 3, tzinfo=UTC))
    result = cli_runner.invoke(cli, ["build", "--results", str(results)], terminal_width=400)
    assert result.exit_code == 0, result.output
    manifest = json.loads((results / "dbt" / "target" / "manifest.json").read_text())
    nodes = [*manifest["nodes"].values(), *manifest.get("unit_tests", {}).values()]
    models = sum(n["resource_type"] == "model" for n in nodes)
    seeds = sum(n["resource_type"] == "seed" for n in nodes)
    tests = sum(n["resource_type"] in ("test", "unit_test") for n in nodes)
    assert models > 10 and tests > models and seeds >= 1  # seeds: e.g. server_metric_names
    loaded = f"{seeds} seed{'s' if seeds != 1 else ''} loaded"
    assert f"dbt build: {models} models built, {loaded}, {tests} tests passed; warehouse" in result.output
    assert " pass," not in result.output and " success" not in result.output
