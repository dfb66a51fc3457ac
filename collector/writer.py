"""Part files of the requests table, written while a run goes on, off the event loop.

Every finished row is first appended to a journal (:mod:`fmb.collector.journal`), so a
killed process loses none. Rows are then buffered and handed to a writer thread every
``max_rows`` rows and at the end of every cell, where the collector also waits for them
to be on disk. The thread finishes the rows (client token counts), writes each part file
under a hidden temporary name, links it into place under the next free
``part-NNNNN.parquet`` name, and deletes the journal segment that held those rows:
readers never see a partial file, and several writers in one run folder never overwrite
each other's parts. The collector of a shard (`fmb collect --shard I/N`) names its parts
and journal segments after the shard (``part-shard-I-of-N-NNNNN.parquet``), so shards on
different hosts writing into one shared folder never compete for a name.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fmb.collector.journal import Journal
from fmb.collector.schemas import REQUESTS


def claim_part(directory: Path, table: pa.Table, tag: str = "") -> Path:
    """Write ``table`` as the next free ``part-<tag>NNNNN.parquet`` of ``directory``; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".part-{uuid.uuid4().hex}.tmp"
    pq.write_table(table, tmp, compression="zstd")
    number = len(list(directory.glob(f"part-{tag}*.parquet")))
    try:
        while True:
            path = directory / f"part-{tag}{number:05d}.parquet"
            try:
                os.link(tmp, path)  # fails if the name is taken, unlike a rename
                return path
            except FileExistsError:
                number += 1
    finally:
        tmp.unlink(missing_ok=True)


class RequestWriter:
    def __init__(
        self,
        directory: Path,
        complete: Callable[[list[dict[str, Any]]], None] | None = None,
        max_rows: int = 2000,
        tag: str = "",
    ) -> None:
        """``complete`` finishes a batch of rows in place, in the writer thread, just before it is written;
        ``tag`` goes into the names of the parts and journal segments (a shard's, see Shard.tag)."""
        self.directory = directory
        self.tag = tag
        self.complete = complete
        self.max_rows = max_rows
        self._rows: list[dict[str, Any]] = []
        self._journal = Journal(directory, tag)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fmb-writer")
        self._pending: list[Future[None]] = []
        self.rows_written = 0
        self.files: list[Path] = []

    @property
    def buffered(self) -> int:
        return len(self._rows)

    def add(self, row: dict[str, Any]) -> None:
        self._journal.append(row)
        self._rows.append(row)
        if len(self._rows) >= self.max_rows:
            self.flush_soon()

    def flush_soon(self) -> None:
        """Hand the buffered rows to the writer thread (returns at once)."""
        if self._rows:
            batch, self._rows = self._rows, []
            self._pending.append(self._thread.submit(self._write, batch, self._journal.rotate()))

    def flush(self) -> None:
        """Write the buffered rows and wait until every handed-over batch is on disk."""
        self.flush_soon()
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()  # an error in the thread (disk full, ...) is raised here

    def close(self) -> None:
        """Write what is left; an experiment that recorded nothing still gets an (empty) part file,
        so that every run has every raw table."""
        try:
            self.flush()
            if not self.files:
                self._write([])
        finally:
            self._journal.close()
            self._thread.shutdown(wait=True)

    def _write(self, rows: list[dict[str, Any]], segment: Path | None = None) -> None:
        if self.complete is not None and rows:
            self.complete(rows)
        self.files.append(claim_part(self.directory, pa.Table.from_pylist(rows, schema=REQUESTS), self.tag))
        self.rows_written += len(rows)
        if segment is not None:
            segment.unlink(missing_ok=True)  # its rows are in the part now
