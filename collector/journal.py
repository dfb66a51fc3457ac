"""A journal of finished request rows: each row is on disk the moment it is finished.

Rows reach Parquet in batches (see :mod:`fmb.collector.writer`); until then each one is
also appended to a journal segment, one JSON line with one ``write`` call, so a process
killed with SIGKILL loses no finished request: the operating system keeps what was
written. A segment is deleted once its rows are in a Parquet part; the segments a killed
process leaves behind are read back by :mod:`fmb.collector.recovery`.

Segments are hidden files (``.journal-<id>.jsonl``) beside the part files, so readers of
``*.parquet`` never see them. A closed segment of a live writer is read back whole by
:func:`read_table` (pyarrow's JSON reader, outside the GIL); one a killed process left
behind, whose last line may be cut short, by :func:`read_segment`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.json as pa_json

from fmb.collector.schemas import REQUESTS

SEGMENT_GLOB = ".journal-*.jsonl"
_TIMESTAMPS = [f.name for f in REQUESTS if pa.types.is_timestamp(f.type)]


def _line(row: dict[str, Any]) -> bytes:
    """A row as one line of JSON (timestamps in RFC 3339); a lone surrogate in a text, which UTF-8
    cannot carry (a server's broken escape), becomes "?"."""
    try:
        return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        clean = {k: v.encode("utf-8", "replace").decode() if isinstance(v, str) else v for k, v in row.items()}
        return orjson.dumps(clean, option=orjson.OPT_APPEND_NEWLINE)


class Journal:
    """Append-only segments of one writer; ``rotate`` starts a new segment and returns the old one."""

    def __init__(self, directory: Path, tag: str = "") -> None:
        self.directory = directory
        self.tag = tag  # a shard's segments are named after it (see fmb.collector.shard)
        self._fd: int | None = None
        self._path: Path | None = None

    def append(self, row: dict[str, Any]) -> None:
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._path = self.directory / f".journal-{self.tag}{uuid.uuid4().hex}.jsonl"
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self._fd, _line(row))

    def rotate(self) -> Path | None:
        """Close the current segment (None if nothing was appended since the last rotation)."""
        path, fd = self._path, self._fd
        self._fd = self._path = None
        if fd is not None:
            os.close(fd)
        return path

    def close(self) -> None:
        self.rotate()


def read_segment(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a segment; a last line cut short by the kill is skipped."""
    with open(path, "rb") as handle:
        for line in handle:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if not isinstance(row, dict):
                continue
            for name in _TIMESTAMPS:
                if row.get(name) is not None:
                    row[name] = datetime.fromisoformat(row[name])
            yield row


def read_table(path: Path) -> pa.Table:
    """A closed segment's rows as a table of the requests schema (every line whole).

    The JSON is parsed in native code, in one block as large as the file (a block must hold
    whole lines), without taking the GIL for long: this runs in the writer thread while
    the event loop sends requests."""
    size = path.stat().st_size
    if not size:
        return REQUESTS.empty_table()
    table = pa_json.read_json(
        path,
        read_options=pa_json.ReadOptions(use_threads=False, block_size=size + 1),
        parse_options=pa_json.ParseOptions(explicit_schema=REQUESTS, unexpected_field_behavior="ignore"),
    )
    return pa.Table.from_arrays(table.columns, schema=REQUESTS)


def segments(directory: Path, tag: str = "") -> list[Path]:
    """The segments of ``directory`` (only a shard's with its ``tag``)."""
    return sorted(directory.glob(f".journal-{tag}*.jsonl"))
