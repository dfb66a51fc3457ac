"""The same dbt models on Spark: from the same raw tables, every mart equals DuckDB's.

One results folder holds two runs of requests (one served by two model copies), an
evaluation with its judges' verdicts and a run with server, client, host and endpoint
telemetry, so that every mart has rows. DuckDB builds it as `fmb build` does; a local Spark
session (`dbt build --target spark`, in a process of its own: tests/spark_marts.py) builds it
again (seeds, models and unit tests), and every mart is compared row for row, column for
column. Without a JVM, a fast check keeps the models free of SQL that only some engines read.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fmb.collector.parquet_io import write_atomic
from fmb.collector.schemas import CLIENT_METRICS, ENDPOINT_METRICS, HOST_METRICS, REQUESTS, SERVER_METRICS
from fmb.paths import PROJECT_ROOT, ResultsLayout
from fmb.warehouse.build import build, warehouse_path
from tests.rawdata import write_evaluation, write_run
from tests.test_accuracy_warehouse import JUDGE_PRICING, WITH_ACCURACY, judged
from tests.test_telemetry_warehouse import client_rows, endpoint_rows, host_rows, server_rows, write_requests

MARTS = sorted(p.stem for p in (PROJECT_ROOT / "dbt_project" / "models" / "marts").glob("*.sql"))

# Floats whose last digits depend on the order in which an engine adds up a group (sums, means,
# the 9-digit rounding of stable_avg after them) may differ by this much, relative or absolute.
# Everything else (counts, strings, flags, timestamps, percentiles of the same values) is exact.
FLOAT_TOLERANCE = 1e-9

# Marts that cannot be equal on both engines, and why. None today: add one only with its reason.
UNEQUAL: dict[str, str] = {}


def spark_missing() -> str | None:
    """Why Spark cannot run here, or None."""
    if find_spec("pyspark") is None or find_spec("dbt.adapters.spark") is None:
        return "dbt-spark and pyspark are not installed: pip install 'fmb[spark]' (./dev test installs them)"
    if shutil.which("java") is None:
        return (
            "no `java` on PATH: Spark needs a Java 17+ runtime "
            "(./dev test installs Debian's openjdk-17-jre-headless when it runs as root)"
        )
    return None


def with_model_copies(results: Path, run_id: str, experiment: str) -> None:
    """The experiment's requests of the run as served by two model copies (by request index)."""
    for path in sorted(ResultsLayout(results).requests_dir(experiment, run_id).glob("*.parquet")):
        table = pq.read_table(path, schema=REQUESTS)
        copies = pa.array([1 + i % 2 for i in table.column("request_index").to_pylist()], pa.int32())
        table = table.set_column(REQUESTS.get_field_index("model_copy"), REQUESTS.field("model_copy"), copies)
        write_atomic(table.to_pylist(), REQUESTS, path)


def write_raw(tmp: Path) -> Path:
    """Raw tables that give every mart rows; returns the results folder."""
    results = tmp / "results"
    start = datetime(2026, 4, 1, tzinfo=UTC)
    for seed in (1, 2):
        folder = tmp / f"run-{seed}"
        folder.mkdir()
        write_run(
            folder,
            results,
            seed,
            start + timedelta(days=seed),
            config_text=WITH_ACCURACY,
            pricing_text=JUDGE_PRICING,
            rows_per_cell=40,
        )
    with_model_copies(results, "run-2", "priced")
    write_evaluation(results, "run-1", "run-1-eval", judged(results, "run-1"), started_at=start + timedelta(days=5))
    folder = tmp / "telemetry"
    folder.mkdir()
    run_id, _ = write_requests(folder, results)
    layout = ResultsLayout(results)
    write_atomic(server_rows(run_id), SERVER_METRICS, layout.server_metrics_dir(run_id) / "part-00000.parquet")
    write_atomic(client_rows(run_id), CLIENT_METRICS, layout.client_metrics_dir(run_id) / "part-00000.parquet")
    write_atomic(host_rows(run_id), HOST_METRICS, layout.host_metrics_dir(run_id) / "part-00000.parquet")
    write_atomic(endpoint_rows(run_id), ENDPOINT_METRICS, layout.endpoint_metrics_dir(run_id) / "part-00000.parquet")
    return results


def duckdb_mart(results: Path, mart: str) -> pa.Table:
    con = duckdb.connect(str(warehouse_path(results)), read_only=True)
    try:
        relation = con.sql(f"select * from {mart}")
        # duckdb 2 names it to_arrow_table; 1.x arrow.
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
        return fetch()
    finally:
        con.close()


def comparable(value: Any) -> Any:
    """A value as both engines' rows are compared: instants in UTC."""
    if isinstance(value, datetime):
        assert value.tzinfo is not None, f"a timestamp without a time zone: {value}"
        return value.astimezone(UTC)
    return value


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) or isinstance(b, float):
        both_numbers = isinstance(a, int | float) and isinstance(b, int | float)
        return both_numbers and math.isclose(a, b, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)
    return bool(a == b)


def sort_key(row: dict[str, Any]) -> tuple:
    """Rows in a fixed order: by their exact columns first, then by their floats (rounded)."""
    exact = [(v is None, str(v)) for v in row.values() if not isinstance(v, float)]
    floats = [(v is None, round(v, 6) if v is not None else 0.0) for v in row.values() if isinstance(v, float)]
    return (*exact, *floats)


def differences(duck: pa.Table, spark: pa.Table) -> list[str]:
    """What differs between the two engines' rows of a mart, in words (empty when equal)."""
    if duck.column_names != spark.column_names:
        return [f"columns differ: DuckDB {duck.column_names}, Spark {spark.column_names}"]
    if duck.num_rows != spark.num_rows:
        return [f"{duck.num_rows} rows on DuckDB, {spark.num_rows} on Spark"]
    rows = [
        sorted(({k: comparable(v) for k, v in r.items()} for r in t.to_pylist()), key=sort_key) for t in (duck, spark)
    ]
    found = []
    for number, (d, s) in enumerate(zip(*rows, strict=True)):
        for column in duck.column_names:
            if not same(d[column], s[column]):
                found.append(f"row {number}, {column}: DuckDB {d[column]!r}, Spark {s[column]!r}")
    return found


# SQL only DuckDB (or only some engines) reads, which belongs in a dispatch macro of dbt_project/macros/,
# never in a model: the models must run unchanged on DuckDB, Spark and Athena.
DIALECT_ONLY = {
    r"::": "a :: cast (cast(x as type) instead)",
    r"\bfilter\s*\(\s*where": "an aggregate FILTER clause (sum(case when ... then 1 else 0 end) instead)",
    r"\bqualify\b": "QUALIFY (a row_number() in a CTE, then where)",
    r"\bexclude\s*\(": "SELECT * EXCLUDE",
    r"\bvarchar\b|with time zone": "a type name that differs between engines (string_type(), timestamp_tz_type())",
    r"read_parquet|quantile_cont|json_extract|\blist_\w+\(|\bunnest\(|\bepoch\w*\(|strftime|date_trunc": (
        "a DuckDB function (a dispatch macro: source(), percentile(), json_number(), ...)"
    ),
    r"dbt\.date(add|diff)\(|\binterval\b|date_diff\(": "date arithmetic (duration_s(), shift_timestamp())",
}


def without_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*|\{#.*?#\}", "", sql, flags=re.DOTALL)


@pytest.mark.parametrize(
    "model", sorted((PROJECT_ROOT / "dbt_project" / "models").rglob("*.sql")), ids=lambda p: p.stem
)
def test_models_hold_no_engine_specific_sql(model: Path) -> None:
    sql = without_comments(model.read_text()).lower()
    found = [why for pattern, why in DIALECT_ONLY.items() if re.search(pattern, sql)]
    assert not found, f"{model.name} uses {found}"


def test_the_comparison_tells_equal_marts_from_different_ones() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    duck = pa.table({"run_id": ["b", "a"], "n": [2, 1], "x": [0.5, 1 / 3], "ok": [True, None], "at": [at, at]})
    assert differences(duck, duck) == []
    # Rows in another order, a float off in its last digits, an instant in another time zone: equal.
    spark = pa.table(
        {
            "run_id": ["a", "b"],
            "n": [1, 2],
            "x": [1 / 3 * (1 + 1e-13), 0.5],
            "ok": [None, True],
            "at": pa.array([at, at], pa.timestamp("us", tz="America/New_York")),
        }
    )
    assert differences(duck, spark) == []
    assert differences(duck, spark.set_column(2, "x", pa.array([1 / 3 + 1e-6, 0.5]))) == [
        f"row 0, x: DuckDB {1 / 3!r}, Spark {1 / 3 + 1e-6!r}"
    ]
    assert differences(duck, spark.set_column(3, "ok", pa.array([False, True]))) == [
        "row 0, ok: DuckDB None, Spark False"
    ]
    assert differences(duck, spark.set_column(1, "n", pa.array([1.0, 2.5]))) == ["row 1, n: DuckDB 2, Spark 2.5"]
    assert differences(duck, spark.slice(0, 1)) == ["2 rows on DuckDB, 1 on Spark"]
    assert differences(duck, spark.drop(["ok"]))[0].startswith("columns differ")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = write_raw(tmp_path_factory.mktemp("engines"))
    build(folder)
    return folder


@pytest.mark.slow  # a dbt build
def test_every_mart_has_rows_to_compare(results: Path) -> None:
    empty = [mart for mart in MARTS if duckdb_mart(results, mart).num_rows == 0]
    assert not empty, f"the raw data leaves these marts empty, so they would be compared on nothing: {empty}"


@pytest.mark.slow  # a dbt build on a JVM, about two minutes
def test_spark_builds_the_same_marts(results: Path, tmp_path: Path) -> None:
    missing = spark_missing()
    if missing:
        pytest.skip(missing)
    out = tmp_path / "spark-marts"
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "FMB_SPARK_SHUFFLE_PARTITIONS": "2",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    # The working folder is the test's own: anything Spark or Derby writes beside it stays there.
    done = subprocess.run(
        [sys.executable, "-m", "tests.spark_marts", str(results), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"dbt build --target spark failed:\n{done.stderr[-6000:]}\n{done.stdout[-6000:]}"
    # Spark's warehouse, its metastore and derby.log went under the results folder, nothing elsewhere.
    assert sorted(p.name for p in (results / "spark").iterdir()) == ["derby.log", "metastore_db", "warehouse"]
    assert (results / "spark" / "warehouse" / "fmb.db").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["spark-marts"]
    assert not list(PROJECT_ROOT.glob("metastore_db")) and not (PROJECT_ROOT / "derby.log").exists()
    built = sorted(p.name for p in out.iterdir())
    assert built == MARTS
    unequal = {}
    for mart in MARTS:
        found = differences(duckdb_mart(results, mart), pq.read_table(out / mart))
        if found and mart not in UNEQUAL:
            unequal[mart] = found[:5] + ([f"... {len(found) - 5} more"] if len(found) > 5 else [])
    assert not unequal, "marts that differ between DuckDB and Spark:\n" + "\n".join(
        f"{mart}:\n  " + "\n  ".join(found) for mart, found in unequal.items()
    )
