"""Part files of the requests table, written while a run goes on, off the event loop.

Every finished row is appended to a journal (:mod:`fmb.collector.journal`), so a killed
process loses none; that is all the event loop does with a row. Every ``max_rows`` rows
and at the end of every cell (where the collector also waits for them to be on disk) the
journal segment is closed and handed to a writer thread, which reads it back into Arrow
with pyarrow's JSON reader (native code that lets go of the GIL, so the event loop is
not held up the way a conversion of Python objects would hold it), finishes the rows
(client token counts), writes the part file under a hidden temporary name, links it
into place under the next free ``part-NNNNN.parquet`` name, and deletes the segment:
readers never see a partial file, and several writers in one run folder never
overwrite each other's parts. The collector of a shard (`fmb collect --shard I/N`)
names its parts and journal segments after the shard (``part-shard-I-of-N-NNNNN.parquet``),
so shards on different hosts writing into one shared folder never compete for a name.
"""

from __future__ import annotations

import os
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fmb.collector.journal import Journal, read_table
from fmb.collector.schemas import REQUESTS
from fmb.prepare.tokens import TokenCounter


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


def with_completion_tokens(table: pa.Table, counter: TokenCounter) -> pa.Table:
    """``table`` with the client's count of completion tokens for each ``ok`` row that has none yet."""
    missing = pc.fill_null(
        pc.and_(pc.equal(table["status"], "ok"), pc.is_null(table["completion_tokens_client"])), False
    )
    texts = table["completion_text"].filter(missing).to_pylist()
    if not texts:
        return table
    # One by one in this thread: a batch spreads over every core (the tokenizers library's own
    # thread pool) and takes the CPU that the event loop needs to time responses.
    counts = pa.array([counter.count_completion(t or "") for t in texts], pa.int32())
    column = pc.replace_with_mask(table["completion_tokens_client"].combine_chunks(), missing.combine_chunks(), counts)
    index = table.schema.get_field_index("completion_tokens_client")
    return table.set_column(index, table.schema.field(index), column)


class RequestWriter:
    def __init__(
        self,
        directory: Path,
        counter: TokenCounter | None = None,
        max_rows: int = 2000,
        tag: str = "",
    ) -> None:
        """``counter`` counts the completion tokens of the ``ok`` rows, in the writer thread, just
        before they are written; ``tag`` goes into the names of the parts and journal segments (a
        shard's, see Shard.tag)."""
        self.directory = directory
        self.tag = tag
        self.counter = counter
        self.max_rows = max_rows
        self._journaled = 0  # rows in the journal's open segment
        self._journal = Journal(directory, tag)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fmb-writer")
        self._pending: list[Future[None]] = []
        self.rows_written = 0
        self.files: list[Path] = []

    @property
    def buffered(self) -> int:
        """Rows journaled but not yet handed to the writer thread."""
        return self._journaled

    def add(self, row: dict[str, Any]) -> None:
        self._journal.append(row)
        self._journaled += 1
        if self._journaled >= self.max_rows:
            self.flush_soon()

    def flush_soon(self) -> None:
        """Hand the journaled rows to the writer thread (returns at once)."""
        segment = self._journal.rotate()
        self._journaled = 0
        if segment is not None:
            self._pending.append(self._thread.submit(self._write_segment, segment))

    def flush(self) -> None:
        """Write the journaled rows and wait until every handed-over batch is on disk."""
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
                self._write(REQUESTS.empty_table())
        finally:
            self._journal.close()
            self._thread.shutdown(wait=True)

    def _write_segment(self, segment: Path) -> None:
        self._write(read_table(segment))
        segment.unlink(missing_ok=True)  # its rows are in the part now

    def _write(self, table: pa.Table) -> None:
        if self.counter is not None and table.num_rows:
            table = with_completion_tokens(table, self.counter)
        self.files.append(claim_part(self.directory, table, self.tag))
        self.rows_written += table.num_rows
