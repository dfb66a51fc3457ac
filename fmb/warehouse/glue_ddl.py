"""Athena's CREATE EXTERNAL TABLE statements for the raw tables, from the collector's schemas.

The raw Parquet tables are hive-partitioned (fmb.paths.ResultsLayout): the folder names carry
the partition columns (``run_id=<id>``), which the files also hold. Athena cannot declare a
column twice, so each table's partition columns are its PARTITIONED BY keys and its other
columns are the table's own; the partitions are registered with MSCK REPAIR TABLE after
each collect (their values are run ids, which partition projection cannot list).

    python -m fmb.warehouse.glue_ddl s3://bucket/results/raw [DATABASE]

prints the statements (DATABASE defaults to raw, the schema of sources.yml's raw source).
"""

from __future__ import annotations

import sys

import pyarrow as pa

from fmb.collector.schemas import TABLES

# The hive partition columns of each raw table, outermost first (fmb.paths.ResultsLayout).
PARTITIONS: dict[str, tuple[str, ...]] = {
    "requests": ("experiment", "run_id"),
    "prompts": ("benchmark",),
    "evaluations": ("run_id", "evaluation_id"),
    "evaluation_scores": ("run_id", "evaluation_id"),
}
DEFAULT_PARTITIONS = ("run_id",)


def partition_columns(table: str) -> tuple[str, ...]:
    return PARTITIONS.get(table, DEFAULT_PARTITIONS)


def hive_type(type_: pa.DataType) -> str:
    """Athena's (Hive's) name for a column type of the raw tables."""
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return "string"
    if pa.types.is_boolean(type_):
        return "boolean"
    if pa.types.is_int32(type_):
        return "int"
    if pa.types.is_int64(type_):
        return "bigint"
    if pa.types.is_float32(type_):
        return "float"
    if pa.types.is_float64(type_):
        return "double"
    if pa.types.is_timestamp(type_):
        return "timestamp"
    if pa.types.is_list(type_):
        return f"array<{hive_type(type_.value_type)}>"
    raise ValueError(f"no Athena type for the raw column type {type_}")


def create_table(table: str, location: str, database: str = "raw") -> str:
    """The CREATE EXTERNAL TABLE statement of one raw table under ``location`` (the raw folder)."""
    schema = TABLES[table]
    keys = partition_columns(table)
    columns = [f"  `{f.name}` {hive_type(f.type)}" for f in schema if f.name not in keys]
    partitions = [f"  `{name}` {hive_type(schema.field(name).type)}" for name in keys]
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{table}` (\n"
        + ",\n".join(columns)
        + "\n)\nPARTITIONED BY (\n"
        + ",\n".join(partitions)
        + f"\n)\nSTORED AS PARQUET\nLOCATION '{location.rstrip('/')}/{table}/';"
    )


def statements(location: str, database: str = "raw") -> str:
    """Every raw table's CREATE statement, then the MSCK REPAIR TABLE that registers its partitions."""
    creates = [create_table(table, location, database) for table in TABLES]
    repairs = [f"MSCK REPAIR TABLE `{database}`.`{table}`;" for table in TABLES]
    return "\n\n".join(creates) + "\n\n" + "\n".join(repairs) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or not argv[0].startswith("s3://"):
        print("usage: python -m fmb.warehouse.glue_ddl s3://bucket/results/raw [DATABASE]", file=sys.stderr)
        return 2
    sys.stdout.write(statements(*argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
