"""Streamed HTTP response bodies: server-sent events and JSON lines, from aiohttp.

``iter_events`` parses the SSE wire format (``data:`` and ``event:`` fields, a blank line
ends an event, ``:`` starts a comment); ``iter_json_lines`` reads one JSON document a
line (Ollama, DJL). Both run for every streamed chunk, so they read whatever bytes have
arrived in one await and split them themselves, instead of awaiting line by line: the
collector's own overhead is part of every time it records.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import StreamReader

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


@dataclass
class Event:
    data: str
    event: str = "message"


def _parse(block: bytes) -> Event | None:
    data: list[str] = []
    name = "message"
    for line in block.decode("utf-8").splitlines():
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    return Event("\n".join(data), name) if data else None


async def iter_events(stream: StreamReader) -> AsyncIterator[Event]:
    buffer = b""
    async for piece in stream.iter_any():
        buffer += piece
        start = 0
        for match in _EVENT_END.finditer(buffer):
            event = _parse(buffer[start : match.start()])
            start = match.end()
            if event is not None:
                yield event
        buffer = buffer[start:]
    if buffer.strip():
        event = _parse(buffer)
        if event is not None:
            yield event


async def iter_json_lines(stream: StreamReader) -> AsyncIterator[Any]:
    """One parsed JSON document per non-empty line; a line that is not JSON raises ValueError."""
    buffer = b""
    async for piece in stream.iter_any():
        buffer += piece
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if buffer.strip():
        yield json.loads(buffer)
