"""Streamed HTTP response bodies: server-sent events and JSON lines, from aiohttp.

``sse_data`` reads the SSE wire format (``data:`` fields, a blank line ends an event,
``:`` starts a comment) and yields the data of the events; ``json_lines`` yields one
JSON document a line (Ollama, DJL). Both run for every streamed chunk, so they read
whatever bytes have arrived in one await and split them themselves, and hand over all
the events of a read as one list: the caller's loop steps once per read, not once per
event through a chain of generators. The collector's own overhead is part of every time
it records.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from aiohttp import StreamReader

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


def _data(block: bytes) -> bytes | None:
    """The data of one event (its ``data`` lines joined with LF), or None when it has none."""
    data: list[bytes] = []
    for line in block.splitlines():  # bytes split only on CR, LF and CRLF
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
    return b"\n".join(data) if data else None


def split_events(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The data of the complete events in ``buffer``, and what is left of an event not yet complete.

    An event without data (a comment, only ``id:`` or ``retry:``) is left out; so is one whose data
    is empty (the spec dispatches no such event)."""
    if b"\r" in buffer:  # CR or CRLF line ends somewhere: the general split
        blocks = []
        start = 0
        for match in _EVENT_END.finditer(buffer):
            blocks.append(buffer[start : match.start()])
            start = match.end()
        rest = buffer[start:]
    else:
        *blocks, rest = buffer.split(b"\n\n")
    out = []
    for block in blocks:
        if block.startswith(b"data: ") and b"\n" not in block:  # the usual event: one data line
            data: bytes | None = block[6:]
        else:
            data = _data(block)
        if data:
            out.append(data)
    return out, rest


async def sse_data(stream: StreamReader) -> AsyncIterator[list[bytes]]:
    """The data of a stream's server-sent events, one list for each read that completed any."""
    buffer = b""
    async for piece in stream.iter_any():
        events, buffer = split_events(buffer + piece if buffer else piece)
        if events:
            yield events
    if buffer.strip():  # the last event, without the blank line that should end it
        data = _data(buffer)
        if data:
            yield [data]


async def json_lines(stream: StreamReader) -> AsyncIterator[list[bytes]]:
    """A stream's non-empty lines (one JSON document each), one list for each read that completed any."""
    buffer = b""
    async for piece in stream.iter_any():
        *lines, buffer = (buffer + piece if buffer else piece).split(b"\n")
        lines = [line for line in lines if line.strip()]
        if lines:
            yield lines
    if buffer.strip():
        yield [buffer]
