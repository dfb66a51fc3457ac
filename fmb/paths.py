"""Where fmb finds its own files and where it writes results."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

_PACKAGE = Path(__file__).resolve().parent
_INSTALLED_PROJECT = _PACKAGE / "_project"


def _project_root() -> Path:
    """The folder holding dbt_project.yml, profiles.yml, dbt_project/ and configs/.

    A wheel ships them as fmb/_project/ (package data laid out as in the repository, see
    pyproject.toml); in a clone (an editable install) they are the repository root.
    """
    if (_INSTALLED_PROJECT / "dbt_project.yml").is_file():
        return _INSTALLED_PROJECT
    return _PACKAGE.parent


# fmb's own files, read only: dbt writes its target and logs under the results folder.
PROJECT_ROOT = _project_root()
DBT_PROJECT_DIR = PROJECT_ROOT  # dbt's --project-dir and --profiles-dir
METRIC_DOCS = PROJECT_ROOT / "dbt_project" / "models" / "docs.md"  # the metric definitions' docs blocks
ACCURACY_DOCS = PROJECT_ROOT / "dbt_project" / "models" / "accuracy.md"  # the accuracy step's docs blocks
BUNDLED_CONFIGS = PROJECT_ROOT / "configs"
BUNDLED_PROMPT_TEMPLATES = BUNDLED_CONFIGS / "prompt_template"
BUNDLED_PRICING = BUNDLED_CONFIGS / "pricing.yml"


def partition_value(value: str) -> str:
    """A hive partition directory value: percent-encoded, so any name is a safe path.

    DuckDB and pyarrow decode the percent-encoding when they read hive partitions.
    """
    return quote(value, safe="-_.")


def slug(value: str) -> str:
    """A readable file-system name for a benchmark or experiment name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", value).strip("-.")
    return cleaned or "unnamed"


# The raw tables `fmb evaluate` writes as part files, one folder per run and evaluation.
EVALUATION_PART_TABLES = ("evaluations", "evaluation_scores")


class ResultsLayout:
    """The folders under ``--results`` (default ``./results``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    def payload_dir(self, benchmark: str) -> Path:
        return self.root / "payloads" / slug(benchmark)

    def requests_dir(self, experiment: str, run_id: str) -> Path:
        return self.raw / "requests" / f"experiment={partition_value(experiment)}" / f"run_id={partition_value(run_id)}"

    def run_table_dir(self, table: str, run_id: str) -> Path:
        return self.raw / table / f"run_id={partition_value(run_id)}"

    def host_metrics_dir(self, run_id: str) -> Path:
        return self.run_table_dir("host_metrics", run_id)

    def server_metrics_dir(self, run_id: str) -> Path:
        return self.run_table_dir("server_metrics", run_id)

    def endpoint_metrics_dir(self, run_id: str) -> Path:
        return self.run_table_dir("endpoint_metrics", run_id)

    def client_metrics_dir(self, run_id: str) -> Path:
        return self.run_table_dir("client_metrics", run_id)

    def evaluation_run_path(self, run_id: str, evaluation_id: str) -> Path:
        """The one-row file of an evaluation (`fmb evaluate`) of a run in raw/evaluation_runs."""
        return self.run_table_dir("evaluation_runs", run_id) / f"{partition_value(evaluation_id)}.parquet"

    def evaluation_dir(self, table: str, run_id: str, evaluation_id: str) -> Path:
        """The folder of an evaluation's part files in raw/evaluations or raw/evaluation_scores."""
        if table not in EVALUATION_PART_TABLES:
            raise ValueError(f"{table!r} is not a table of part files per evaluation: {EVALUATION_PART_TABLES}")
        return self.run_table_dir(table, run_id) / f"evaluation_id={partition_value(evaluation_id)}"

    def prompts_dir(self, benchmark: str) -> Path:
        return self.raw / "prompts" / f"benchmark={partition_value(benchmark)}"
