"""Part files of a raw telemetry table, rewritten whole about once a second while samples arrive.

The samplers (host, Prometheus, client) add rows from their own threads; ``flush`` writes
the rows of the current part file again, whole, under a hidden name and renames it over
the part (:func:`fmb.collector.parquet_io.write_atomic`). The first write of a part claims
the next free ``part-NNNNN.parquet`` name (:func:`fmb.collector.writer.claim_part`), so
several samplers writing into one run folder never overwrite each other. Once a part holds
``rows_per_part`` rows the next flush starts a new one, so no rewrite grows without bound.
A killed collector therefore loses at most the samples since the last flush and leaves no
half-written file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from fmb.collector.parquet_io import write_atomic
from fmb.collector.writer import claim_part


class SampleParts:
    """Rows of one raw table, written into ``directory``'s part files by :meth:`flush`."""

    def __init__(
        self,
        directory: Path,
        schema: pa.Schema,
        *,
        rows_per_part: int = 20_000,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = directory
        self.schema = schema
        self.rows_per_part = rows_per_part
        self.rows_written = 0
        self._note = note
        self._lock = threading.Lock()
        self._batches: list[pa.RecordBatch] = []  # rows of the current part
        self._part: Path | None = None  # the current part, once claimed
        self._unwritten = 0
        self._write_failed = False

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        """Keep ``rows`` (dicts with the schema's columns) for the next flush."""
        batch = pa.RecordBatch.from_pylist(list(rows), schema=self.schema)
        if batch.num_rows:
            with self._lock:
                self._batches.append(batch)
                self._unwritten += batch.num_rows

    def flush(self) -> None:
        """Write the current part again with the new rows; start a new part once it is full."""
        with self._lock:
            if not self._unwritten:
                return
            table = pa.Table.from_batches(self._batches, schema=self.schema)
            try:
                if self._part is None:
                    self._part = claim_part(self.directory, table)
                else:
                    write_atomic(table, self.schema, self._part)
            except OSError as exc:
                if not self._write_failed:  # keep the rows and try again at the next flush
                    self._write_failed = True
                    if self._note is not None:
                        self._note(f"samples could not be written to {self.directory}: {exc}")
                return
            self.rows_written += self._unwritten
            self._unwritten = 0
            if table.num_rows >= self.rows_per_part:
                self._part, self._batches = None, []
