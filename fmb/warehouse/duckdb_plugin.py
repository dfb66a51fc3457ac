"""A dbt-duckdb plugin that gives the warehouse's SQL the one file-system step it needs.

DuckDB's ``COPY ... TO`` does not create missing folders, so the mart export (the
``export_mart`` macro) first calls ``fmb_mkdirs(path)``, registered here as a scalar
function on every connection dbt opens.
"""

from __future__ import annotations

import os

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection


def _mkdirs(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


class Plugin(BasePlugin):
    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        conn.create_function("fmb_mkdirs", _mkdirs, ["VARCHAR"], "VARCHAR", side_effects=True)
