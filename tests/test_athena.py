"""Athena: the dbt project parses and compiles for it, and the raw tables' Glue DDL follows the schemas.

`dbt compile --target athena` talks to Glue and Athena (the adapter lists the schemas it
builds in); moto's server stands in for both, so no AWS account is needed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fmb.collector.schemas import TABLES
from fmb.paths import PROJECT_ROOT, ResultsLayout, partition_value
from fmb.warehouse.glue_ddl import create_table, hive_type, main, partition_columns, statements
from tests.aws_servers import CREDENTIALS, moto_server

README = PROJECT_ROOT / "README.md"


def raw_table_folder(layout: ResultsLayout, table: str) -> Path:
    """A folder of the table as the collector and `fmb evaluate` write it, for run r and evaluation v."""
    if table == "requests":
        return layout.requests_dir("e x", "r")
    if table == "prompts":
        return layout.prompts_dir("b")
    if table in ("evaluations", "evaluation_scores"):
        return layout.evaluation_dir(table, "r", "v")
    return layout.run_table_dir(table, "r")


@pytest.mark.parametrize("table", sorted(TABLES))
def test_partition_columns_are_the_folders_the_collector_writes(tmp_path: Path, table: str) -> None:
    layout = ResultsLayout(tmp_path)
    folders = raw_table_folder(layout, table).relative_to(layout.raw / table).parts
    keys = tuple(folder.split("=", 1)[0] for folder in folders)
    assert keys == partition_columns(table)
    assert set(keys) <= set(TABLES[table].names), "each file holds its partition columns too"


@pytest.mark.parametrize("table", sorted(TABLES))
def test_the_ddl_declares_every_column_of_the_schema_once(table: str) -> None:
    ddl = create_table(table, "s3://bucket/results/raw")
    declared = re.findall(r"^  `(\w+)` (\S+?),?$", ddl, flags=re.MULTILINE)
    schema = TABLES[table]
    assert sorted(name for name, _ in declared) == sorted(schema.names)
    assert {name: kind for name, kind in declared} == {f.name: hive_type(f.type) for f in schema}
    assert ddl.endswith(f"LOCATION 's3://bucket/results/raw/{table}/';")


def test_column_types_map_to_athena_types() -> None:
    kinds = {hive_type(f.type) for schema in TABLES.values() for f in schema}
    assert kinds <= {"string", "boolean", "int", "bigint", "float", "double", "timestamp", "array<float>"}
    assert hive_type(TABLES["requests"].field("chunk_gaps_ms").type) == "array<float>"


def test_the_readme_shows_the_ddl_fmb_generates() -> None:
    """README's example is the generator's output for the requests table (schema changes show up here)."""
    text = README.read_text()
    shown = re.search(r"```sql\n(CREATE EXTERNAL TABLE IF NOT EXISTS `raw`.`requests`.*?;)\n```", text, re.DOTALL)
    assert shown, "README has no CREATE EXTERNAL TABLE for raw.requests in a ```sql block"
    assert shown.group(1) == create_table("requests", "s3://my-bucket/fmb-results/raw")


def test_the_ddl_command_prints_every_table_and_its_repair(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["s3://b/raw/", "bench"]) == 0
    out = capsys.readouterr().out
    assert out == statements("s3://b/raw/", "bench")
    for table in TABLES:
        assert f"CREATE EXTERNAL TABLE IF NOT EXISTS `bench`.`{table}` (" in out
        assert f"MSCK REPAIR TABLE `bench`.`{table}`;" in out
    assert main(["not-s3"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_partition_values_are_percent_encoded_as_hive_decodes_them() -> None:
    # Hive (and so Athena) unescapes %XX in partition folder names, as DuckDB and pyarrow do.
    assert partition_value("e x/1") == "e%20x%2F1"


@pytest.mark.slow  # two dbt invocations, a minute on a busy machine
def test_dbt_parses_and_compiles_for_athena(tmp_path: Path) -> None:
    with moto_server() as url:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "AWS_REGION": "us-east-1",
            "FMB_RESULTS": str(tmp_path / "results"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        env.pop("AWS_PROFILE", None)
        target = tmp_path / "target"
        common = ["--target", "athena", "--project-dir", str(PROJECT_ROOT), "--profiles-dir", str(PROJECT_ROOT)]
        common += ["--target-path", str(target), "--log-path", str(tmp_path / "logs")]
        dbt = [sys.executable, "-c", "from dbt.cli.main import cli; cli()"]
        for command in ("parse", "compile"):
            done = subprocess.run([*dbt, command, *common], env=env, cwd=tmp_path, capture_output=True, text=True)
            assert done.returncode == 0, (
                f"dbt {command} --target athena failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}"
            )
    compiled = target / "compiled" / "fmb" / "dbt_project" / "models"
    cells = (compiled / "intermediate" / "int_cells_aggregated.sql").read_text()
    assert "approx_percentile(ok_e2e_latency_ms, 0.95)" in cells and "quantile_cont" not in cells
    assert "'approximate' as percentile_method" in (compiled / "marts" / "cells.sql").read_text()
    runs = (compiled / "staging" / "stg_raw__runs.sql").read_text()
    assert "json_extract_scalar(config_json, '$.report.accuracy_budget')" in runs
    assert '"awsdatacatalog"."raw"."runs"' in runs and "read_parquet" not in runs
    aligned = (compiled / "intermediate" / "int_requests_telemetry_aligned.sql").read_text()
    assert "date_add('millisecond'" in aligned and "with time zone" not in aligned
