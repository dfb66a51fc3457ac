"""`dbt build` of the warehouse through dbt's Python API (dbtRunner)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmb.collector.recovery import Recovered, recover_abandoned
from fmb.errors import FmbError
from fmb.paths import DBT_PROJECT_DIR, EVALUATION_PART_TABLES, ResultsLayout
from fmb.warehouse.lock import DEFAULT_WAIT_S, build_lock, check_warehouse_free
from fmb.warehouse.rawcheck import check_raw_readable

if TYPE_CHECKING:
    from dbt.cli.main import dbtRunnerResult

# Characters a results path cannot hold, why, and whether a symbolic link with a plain name
# gets round them. (A quote, a space and the glob characters * [ are escaped in sources.yml
# and export_mart.)
_PATH_CHARACTERS = {
    "\\": ("DuckDB's globs cannot match a path with a backslash", True),
    "=": ("DuckDB's hive partitioning would read a name=value folder as a column of every row", True),
    "#": ("dbt-duckdb reads the warehouse path as a URL, where # starts a fragment", True),
    "?": ("DuckDB takes a ? in a database path for the start of its options (even behind a symbolic link)", False),
}


# The run and evaluation id of the empty evaluation tables a build writes when there is no evaluation.
NO_EVALUATION = "_none"


@dataclass
class BuildResult:
    """How many dbt nodes ended in each status (a failed build raises instead)."""

    counts: dict[str, int] = field(default_factory=dict)
    recovered: list[Recovered] = field(default_factory=list)  # runs found abandoned and finished first
    by_type: dict[tuple[str, str], int] = field(default_factory=dict)  # (resource type, status): nodes

    def summary(self) -> str:
        """What the build did, in words: "17 models built, 99 tests passed" (warnings and skips when any)."""

        def count(types: tuple[str, ...], statuses: tuple[str, ...]) -> int:
            return sum(n for (kind, status), n in self.by_type.items() if kind in types and status in statuses)

        def phrase(n: int, noun: str, verb: str) -> str | None:
            return f"{n} {noun}{'s' if n != 1 else ''} {verb}" if n else None

        parts = [
            phrase(count(("model",), ("success",)), "model", "built"),
            phrase(count(("seed",), ("success",)), "seed", "loaded"),
            phrase(count(("snapshot",), ("success",)), "snapshot", "taken"),
            phrase(count(_TESTS, ("pass",)), "test", "passed"),
            phrase(count(_TESTS, ("warn",)), "test", "warned"),
            phrase(sum(n for (_, status), n in self.by_type.items() if status == "skipped"), "node", "skipped"),
        ]
        said = [p for p in parts if p]
        return ", ".join(said) if said else "nothing to build"


_TESTS = ("test", "unit_test")


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _release_duckdb() -> None:
    """Close the DuckDB file dbt-duckdb keeps open in this process, so others can open it."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    env = getattr(DuckDBConnectionManager, "_ENV", None)
    if env is not None:
        env.close()
    DuckDBConnectionManager.close_all_connections()


def warehouse_path(results: Path) -> Path:
    return results / "warehouse.duckdb"


def _check_results_path(results: Path) -> None:
    real = Path(os.path.realpath(results))  # what DuckDB opens the warehouse as
    for character, (why, link_helps) in _PATH_CHARACTERS.items():
        path = results if link_helps else real
        if character in str(path):
            hint = "Move or rename the folder"
            if link_helps:
                hint += f", or point --results at a link with a plain name: ln -s {shlex.quote(str(path))} /tmp/res"
            raise FmbError(f"the results folder {path} has a {character} in its path, and {why}.", hint=hint)


def build(
    results: Path,
    *,
    select: tuple[str, ...] = (),
    quiet: bool = True,
    wait_s: float = DEFAULT_WAIT_S,
    on_wait: Callable[[str], None] | None = None,
    target: str | None = None,
) -> BuildResult:
    """Run `dbt build` over ``results``; raise :class:`FmbError` with the failures when it fails.

    Before dbt starts: every raw folder and Parquet file must be readable, and no other
    program may hold the warehouse file. A build running on the same ``results`` is waited
    for up to ``wait_s`` seconds (``on_wait`` gets a message when that happens).
    ``target`` names another output of profiles.yml than its default (duckdb), e.g. spark.
    """
    # Absolute, but symbolic links kept: a link is the way round the characters refused here.
    results = Path(os.path.abspath(results))
    _check_results_path(results)
    check_raw_readable(results / "raw")
    if not any((results / "raw" / "runs").glob("*/*.parquet")):
        raise FmbError(
            f"there is no run in {results / 'raw'} to build the warehouse from.",
            hint="Run `fmb collect CONFIG` first (or point --results at the folder it wrote).",
        )
    # The project is only read (from the clone, or from site-packages in a wheel install):
    # everything dbt writes goes under the results folder, and with no packages.yml and
    # no `dbt deps` it creates no dbt_packages/ (tests/test_wheel.py checks both).
    args = [
        "build",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(results / "dbt" / "target"),
        "--log-path",
        str(results / "dbt" / "logs"),
    ]
    if quiet:
        args += ["--quiet"]
    for selector in select:
        args += ["--select", selector]
    if target is not None:
        args += ["--target", target]
    with build_lock(results, wait_s, on_wait):
        layout = ResultsLayout(results)
        recovered = recover_abandoned(layout)
        _record_unplanned_runs(layout)
        _record_current_schemas(layout)
        check_warehouse_free(warehouse_path(results))
        outcome = _run_dbt(results, args)
    if outcome.exception is not None:
        raise FmbError(f"dbt build could not run: {outcome.exception}") from None
    counts: dict[str, int] = {}
    by_type: dict[tuple[str, str], int] = {}
    failures: list[str] = []
    for node in _node_results(outcome):
        status = str(node.status)
        counts[status] = counts.get(status, 0) + 1
        kind = (str(node.node.resource_type), status)
        by_type[kind] = by_type.get(kind, 0) + 1
        if status in ("error", "fail"):
            failures.append(f"{node.node.name}: {(node.message or status).strip()}")
    if not outcome.success:
        raise FmbError(
            "dbt build failed:\n  " + "\n  ".join(failures[:10]),
            hint=f"dbt's log is in {results / 'dbt' / 'logs'}; fix the data or the model and build again.",
        )
    return BuildResult(counts, recovered, by_type)


# Raw tables of samples taken beside the requests; a run may have none of them.
TELEMETRY_TABLES = ("host_metrics", "server_metrics", "endpoint_metrics", "client_metrics")


def _record_unplanned_runs(layout: ResultsLayout) -> None:
    """Runs collected before fmb recorded planned cells get an empty cells table: planned counts unknown.

    Likewise runs without telemetry (not sampled, or collected before fmb sampled it) get an
    empty table in each telemetry table (TELEMETRY_TABLES). A results folder without any evaluation (`fmb evaluate`)
    gets one empty file in each evaluation table, under partitions named ``_none`` that no run
    or evaluation has: DuckDB's read_parquet needs a file to match its glob, and an empty one
    adds no row (it stays harmless beside the evaluations written later).
    """
    from fmb.collector.parquet_io import write_atomic
    from fmb.collector.recovery import run_ids
    from fmb.collector.schemas import CELLS, TABLES

    for run_id in run_ids(layout):
        path = layout.run_table_dir("cells", run_id) / "cells.parquet"
        if not path.is_file():
            write_atomic([], CELLS, path)
        for table in TELEMETRY_TABLES:
            samples = layout.run_table_dir(table, run_id)
            if not any(samples.glob("*.parquet")):
                write_atomic([], TABLES[table], samples / "none.parquet")
    if not any((layout.raw / "evaluation_runs").glob("*/*.parquet")):
        write_atomic([], TABLES["evaluation_runs"], layout.evaluation_run_path(NO_EVALUATION, NO_EVALUATION))
    for table in EVALUATION_PART_TABLES:
        if not any((layout.raw / table).glob("*/*/*.parquet")):
            folder = layout.evaluation_dir(table, NO_EVALUATION, NO_EVALUATION)
            write_atomic([], TABLES[table], folder / "part-00000.parquet")


# The partition folders of each raw table's files (sources.yml's globs): the stub of today's columns goes there.
PARTITIONS = {
    "requests": ("experiment", "run_id"),
    "prompts": ("benchmark",),
    "evaluations": ("run_id", "evaluation_id"),
    "evaluation_scores": ("run_id", "evaluation_id"),
}
SCHEMA_STUB = "fmb-columns.parquet"


def _record_current_schemas(layout: ResultsLayout) -> None:
    """Results written by an older fmb get one empty file with today's columns in each raw table that lacks them.

    DuckDB's ``read_parquet(..., union_by_name = true)`` gives a column that only some files
    have as NULL in the others, but a column that no file has does not exist, and the models
    that name it fail. When a table's newest file lacks a column of today's schema (every file
    then may), an empty file with today's columns is written under ``_none`` partitions that no
    run, experiment or benchmark has: it adds the columns and no row. It is rewritten when fmb's
    columns change again.
    """
    import pyarrow.parquet as pq

    from fmb.collector.parquet_io import write_atomic
    from fmb.collector.schemas import TABLES

    for table, schema in TABLES.items():
        folder = layout.raw / table
        stub = folder.joinpath(*(f"{p}={NO_EVALUATION}" for p in PARTITIONS.get(table, ("run_id",))), SCHEMA_STUB)
        wanted = set(schema.names)
        if stub.is_file() and wanted <= set(pq.read_schema(stub).names):
            continue
        depth = len(PARTITIONS.get(table, ("run_id",)))
        files = [f for f in folder.glob("/".join(["*"] * depth + ["*.parquet"])) if f != stub]
        if not files:
            continue  # nothing to read: the tables without files are handled above, or stay empty
        newest = max(files, key=lambda f: f.stat().st_mtime_ns)
        try:
            columns = set(pq.read_schema(newest).names)
        except Exception:
            continue
        if not wanted <= columns:
            write_atomic([], schema, stub)


def _run_dbt(results: Path, args: list[str]) -> dbtRunnerResult:
    from dbt.cli.main import dbtRunner

    with _environment(FMB_RESULTS=str(results), DBT_SEND_ANONYMOUS_USAGE_STATS="false"):
        try:
            return dbtRunner().invoke(args)
        finally:
            _release_duckdb()


def _node_results(outcome: dbtRunnerResult) -> list[Any]:
    """The per-node results of a `dbt build` (its result is a RunExecutionResult)."""
    result = outcome.result
    return list(getattr(result, "results", None) or [])
