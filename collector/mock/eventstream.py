"""Encoding AWS event-stream messages (``application/vnd.amazon.eventstream``).

A message is: total length and headers length (big-endian uint32 each), the CRC32 of
those 8 bytes, the headers (name length, name, type 7 = string, value length, value),
the payload, and the CRC32 of everything before it. botocore decodes these for
SageMaker's InvokeEndpointWithResponseStream and Bedrock's ConverseStream and
InvokeModelWithResponseStream; the mock endpoint writes them.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7


def _headers(headers: dict[str, str]) -> bytes:
    out = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", _STRING, len(raw_value)) + raw_value
    return out


def message(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = _headers(headers)
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    body = prelude + struct.pack("!I", zlib.crc32(prelude)) + encoded + payload
    return body + struct.pack("!I", zlib.crc32(body))


def event(event_type: str, payload: bytes, content_type: str = "application/json") -> bytes:
    return message({":event-type": event_type, ":content-type": content_type, ":message-type": "event"}, payload)


def json_event(event_type: str, data: dict[str, Any]) -> bytes:
    return event(event_type, json.dumps(data).encode())


def exception(exception_type: str, data: dict[str, Any]) -> bytes:
    return message(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"},
        json.dumps(data).encode(),
    )
