"""Part files of the requests table, written while a run goes on.

Rows are buffered and flushed to a new part file every ``max_rows`` rows or
``max_seconds`` seconds, and at the end of every cell. Each part file is written under
a hidden temporary name and renamed into place when complete, so readers never see a
partial file and a killed run keeps every part it finished. Each writer numbers its
own part files; several writers never share a file.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fmb.collector.parquet_io import write_atomic
from fmb.collector.schemas import REQUESTS

_PART = re.compile(r"^part-(\d+)\.parquet$")


class RequestWriter:
    def __init__(
        self,
        directory: Path,
        complete: Callable[[list[dict[str, Any]]], None] | None = None,
        max_rows: int = 2000,
        max_seconds: float = 2.0,
    ) -> None:
        """``complete`` finishes a batch of rows in place just before it is written."""
        self.directory = directory
        self.complete = complete
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self._rows: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        existing = [int(m.group(1)) for p in directory.glob("part-*.parquet") if (m := _PART.match(p.name))]
        self._next_part = max(existing, default=-1) + 1
        self.rows_written = 0
        self.files: list[Path] = []

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        if len(self._rows) >= self.max_rows or time.monotonic() - self._last_flush >= self.max_seconds:
            self.flush()

    def close(self) -> None:
        """Write what is left; an experiment that recorded nothing still gets an (empty) part file,
        so that every run has every raw table."""
        if self._rows or not self.files:
            self.flush(allow_empty=True)

    def flush(self, allow_empty: bool = False) -> None:
        self._last_flush = time.monotonic()
        if not self._rows and not allow_empty:
            return
        if self.complete is not None:
            self.complete(self._rows)
        path = self.directory / f"part-{self._next_part:05d}.parquet"
        write_atomic(self._rows, REQUESTS, path)
        self._next_part += 1
        self.rows_written += len(self._rows)
        self.files.append(path)
        self._rows = []
