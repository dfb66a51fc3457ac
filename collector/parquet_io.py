"""Writing Parquet files so that a reader never sees a half-written one."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def write_atomic(rows: list[dict[str, Any]] | pa.Table, schema: pa.Schema, path: Path) -> Path:
    """Write ``rows`` with ``schema`` to ``path``: a hidden temporary file, then a rename.

    The temporary name is unique, so several writers of the same file (the shards of a run
    writing its plan tables) never write into each other's; the last rename wins."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)
    return path
