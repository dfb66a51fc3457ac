"""A dbt-duckdb plugin: the file-system steps the warehouse's SQL needs.

- DuckDB's ``COPY ... TO`` does not create missing folders, so the mart export (the
  ``export_mart`` macro) first calls ``fmb_mkdirs(path)``, registered here as a scalar
  function on every connection dbt opens (a no-op for an S3 prefix, which has no folders).
- When the raw tables or the marts live in S3 (``FMB_RAW`` or ``FMB_MARTS`` is an
  ``s3://`` prefix), an S3 filesystem is registered with DuckDB, so ``read_parquet`` and
  ``COPY`` use ``s3://`` paths without the httpfs extension (which cannot be installed
  offline). It is pyarrow's S3 client behind fsspec's interface, with the endpoint,
  region and credentials boto3's usual chain resolves (``AWS_ENDPOINT_URL_S3``, profiles,
  roles), so it reaches the same S3 as every other fmb call.
"""

from __future__ import annotations

import os

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection


def _mkdirs(path: str) -> str:
    if not path.startswith("s3://"):
        os.makedirs(path, exist_ok=True)
    return path


class Plugin(BasePlugin):
    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        conn.create_function("fmb_mkdirs", _mkdirs, ["VARCHAR"], "VARCHAR", side_effects=True)
        if any(os.environ.get(name, "").startswith("s3://") for name in ("FMB_RAW", "FMB_MARTS")):
            from fmb.storage import fsspec_s3

            conn.register_filesystem(fsspec_s3())
