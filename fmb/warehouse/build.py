"""`dbt build` of the warehouse through dbt's Python API (dbtRunner)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fmb.errors import FmbError
from fmb.paths import PROJECT_ROOT


@dataclass
class BuildResult:
    """How many dbt nodes ended in each status (a failed build raises instead)."""

    counts: dict[str, int] = field(default_factory=dict)


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


def build(results: Path, *, select: tuple[str, ...] = (), quiet: bool = True) -> BuildResult:
    """Run `dbt build` over ``results``; raise :class:`FmbError` with the failures when it fails."""
    from dbt.cli.main import dbtRunner

    results = results.resolve()
    if not any((results / "raw" / "runs").glob("*/*.parquet")):
        raise FmbError(
            f"there is no run in {results / 'raw'} to build the warehouse from.",
            hint="Run `fmb collect CONFIG` first (or point --results at the folder it wrote).",
        )
    args = [
        "build",
        "--project-dir", str(PROJECT_ROOT),
        "--profiles-dir", str(PROJECT_ROOT),
        "--target-path", str(results / "dbt" / "target"),
        "--log-path", str(results / "dbt" / "logs"),
    ]
    if quiet:
        args += ["--quiet"]
    for selector in select:
        args += ["--select", selector]
    with _environment(FMB_RESULTS=str(results), DBT_SEND_ANONYMOUS_USAGE_STATS="false"):
        try:
            outcome = dbtRunner().invoke(args)
        finally:
            _release_duckdb()
    if outcome.exception is not None:
        raise FmbError(f"dbt build could not run: {outcome.exception}") from None
    counts: dict[str, int] = {}
    failures: list[str] = []
    for node in outcome.result or []:
        status = str(node.status)
        counts[status] = counts.get(status, 0) + 1
        if status in ("error", "fail"):
            failures.append(f"{node.node.name}: {(node.message or status).strip()}")
    if not outcome.success:
        raise FmbError(
            "dbt build failed:\n  " + "\n  ".join(failures[:10]),
            hint=f"dbt's log is in {results / 'dbt' / 'logs'}; fix the data or the model and build again.",
        )
    return BuildResult(counts)
