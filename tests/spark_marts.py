"""Build fmb's warehouse on a local Spark session and copy its marts out as Parquet.

Run in a process of its own (the JVM lives as long as the process):

    python -m tests.spark_marts RESULTS OUT

runs `dbt build --target spark` with FMB_RESULTS=RESULTS (seeds, models and unit tests; the
data tests, 400 queries of a second each on a JVM, are left to DuckDB's build), then writes
every mart that dbt built to OUT/<mart>/ (Parquet, timestamps as UTC instants) and stops the
session. The Spark warehouse, its Derby metastore and derby.log go under RESULTS/spark
(profiles.yml).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fmb.paths import DBT_PROJECT_DIR


def main(results: Path, out: Path) -> int:
    from dbt.cli.main import dbtRunner
    from pyspark.errors import PySparkException
    from pyspark.sql import SparkSession

    os.environ["FMB_RESULTS"] = str(results)
    args = ["build", "--target", "spark", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    args += ["--target-path", str(results / "dbt" / "spark-target"), "--log-path", str(results / "dbt" / "logs")]
    args += ["--exclude-resource-type", "test"]
    outcome = dbtRunner().invoke(args)
    try:
        # The session dbt started (in a thread of its own, so not this thread's active one).
        spark: SparkSession | None = SparkSession.active()
    except PySparkException:
        spark = None  # dbt failed before it started one
    try:
        if not outcome.success:
            for node in getattr(outcome.result, "results", None) or []:
                if str(node.status) in ("error", "fail"):
                    print(f"FAILED {node.node.name}: {node.message}", file=sys.stderr)
            return 1
        assert spark is not None
        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        for node in outcome.result.results:
            model = node.node
            if str(model.resource_type) == "model" and model.fqn[1] == "marts":
                spark.table(f"{model.schema}.{model.name}").coalesce(1).write.parquet(str(out / model.name))
        return 0
    finally:
        if spark is not None:
            spark.stop()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()))
