"""Part files of the requests table, written while a run goes on, off the event loop.

Every finished row is appended to a journal (:mod:`fmb.collector.journal`), so a killed
process loses none; besides that, the event loop only hands the row's completion text to
the writer thread, which counts its tokens (the client's count) right away, spread over
the run. Every ``max_rows`` rows and at the end of every cell (where the collector also
waits for them to be on disk) the journal segment is closed and handed to the thread,
which reads it back into Arrow with pyarrow's JSON reader (native code that lets go of
the GIL, so the event loop is not held up the way a conversion of Python objects would
hold it), adds the counts, writes the part file under a hidden temporary name, links it
into place under the next free ``part-NNNNN.parquet`` name, and deletes the segment:
readers never see a partial file, and several writers in one run folder never
overwrite each other's parts. The collector of a shard (`fmb collect --shard I/N`)
names its parts and journal segments after the shard (``part-shard-I-of-N-NNNNN.parquet``),
so shards on different hosts writing into one shared folder never compete for a name.
"""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import Future
from pathlib import Path
from queue import SimpleQueue
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
    rows = table.select(["status", "completion_tokens_client", "completion_text"]).to_pylist()
    return with_counts(
        table, [counter.count_completion(r["completion_text"] or "") if needs_count(r) else None for r in rows]
    )


def needs_count(row: dict[str, Any]) -> bool:
    """Whether the client counts the row's completion tokens: an ``ok`` row that has no count yet."""
    return row.get("status") == "ok" and row.get("completion_tokens_client") is None


def with_counts(table: pa.Table, counts: list[int | None]) -> pa.Table:
    """``table`` with ``counts`` (one per row, in order) as its client completion tokens where not None."""
    if not any(c is not None for c in counts):
        return table
    index = table.schema.get_field_index("completion_tokens_client")
    column = pc.coalesce(pa.array(counts, pa.int32()), table.column(index).combine_chunks())
    return table.set_column(index, table.schema.field(index), column)


_STOP = object()


class RequestWriter:
    def __init__(
        self,
        directory: Path,
        counter: TokenCounter | None = None,
        max_rows: int = 2000,
        tag: str = "",
    ) -> None:
        """``counter`` counts the completion tokens of the ``ok`` rows, in the writer thread, row by row
        as they are added; ``tag`` goes into the names of the parts and journal segments (a shard's,
        see Shard.tag)."""
        self.directory = directory
        self.tag = tag
        self.counter = counter
        self.max_rows = max_rows
        self._journaled = 0  # rows in the journal's open segment
        self._journal = Journal(directory, tag)
        # In order: the completion text of each row added (None: nothing to count), and after
        # a segment's last row the segment with the future its writing completes.
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="fmb-writer", daemon=True)
        self._thread.start()
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
        # Counted in the thread now, spread over the run, rather than all at once when a part is written.
        counted = self.counter is not None and needs_count(row)
        self._queue.put((row.get("completion_text") or "") if counted else None)
        if self._journaled >= self.max_rows:
            self.flush_soon()

    def flush_soon(self) -> None:
        """Hand the journaled rows to the writer thread (returns at once)."""
        segment = self._journal.rotate()
        self._journaled = 0
        if segment is not None:
            written: Future[None] = Future()
            self._queue.put((segment, written))
            self._pending.append(written)

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
            if not self.files:  # the thread is idle: every batch is written
                self._write(REQUESTS.empty_table(), [])
        finally:
            self._journal.close()
            self._queue.put(_STOP)
            self._thread.join()

    def _work(self) -> None:
        counts: list[int | None] = []
        error: Exception | None = None  # from counting: fails the segment's writing
        while (item := self._queue.get()) is not _STOP:
            if isinstance(item, tuple):
                segment, written = item
                try:
                    if error is not None:
                        raise error
                    self._write(read_table(segment), counts)
                    segment.unlink(missing_ok=True)  # its rows are in the part now
                except Exception as exc:
                    written.set_exception(exc)
                else:
                    written.set_result(None)
                counts, error = [], None
            elif item is None:
                counts.append(None)
            else:
                try:
                    counts.append(self.counter.count_completion(item) if self.counter is not None else None)
                except Exception as exc:
                    counts.append(None)
                    error = error or exc

    def _write(self, table: pa.Table, counts: list[int | None]) -> None:
        if len(counts) != table.num_rows:
            raise RuntimeError(
                f"{len(counts)} rows were added but their journal segment holds {table.num_rows}: not written"
            )
        self.files.append(claim_part(self.directory, with_counts(table, counts), self.tag))
        self.rows_written += table.num_rows
