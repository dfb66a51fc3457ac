"""Jinja filters: how numbers are written in the report. Formatting only, no arithmetic
beyond changing units (milliseconds to seconds, fractions to percent)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

MISSING = "n/a"


def seconds(ms: float | None) -> str:
    """Milliseconds shown as seconds with 3 decimals (an error-adjusted percentile may be infinite: ∞)."""
    if ms is None:
        return MISSING
    return "∞" if math.isinf(ms) else f"{ms / 1000:.3f}"


def millis(ms: float | None) -> str:
    return MISSING if ms is None else f"{ms:.1f}"


def usd(value: float | None) -> str:
    """USD with 2 decimals from 1 up, 3 significant digits below (never in e-notation)."""
    if value is None:
        return MISSING
    if value == 0:
        return "0"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    decimals = 2 - math.floor(math.log10(abs(value)))
    return f"{value:.{decimals}f}"


def percent(fraction: float | None) -> str:
    return MISSING if fraction is None else f"{100 * fraction:.1f}%"


def number(value: float | None, digits: int = 1) -> str:
    return MISSING if value is None else f"{value:,.{digits}f}"


def signed_percent(value: float | None) -> str:
    return MISSING if value is None else f"{value:+.1f}%"


def points(fraction_change: float | None) -> str:
    """A change of a rate (0..1) in percentage points."""
    return MISSING if fraction_change is None else f"{100 * fraction_change:+.1f} points"


def gib(size_bytes: int | None) -> str:
    """A size in bytes as GiB."""
    return MISSING if size_bytes is None else f"{size_bytes / 2**30:,.1f} GiB"


def timestamp(value: datetime | None) -> str:
    return MISSING if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# Characters that Markdown (CommonMark with GitHub's tables and strikethrough) could read as
# syntax inside a line: emphasis, code, links and images, tables, headings' closing #s.
_MARKDOWN_SYNTAX = re.compile(r"[\\`*\[\]|~#]|_(?![A-Za-z0-9])|(?<![A-Za-z0-9])_")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")


def text(value: Any, limit: int | None = None) -> str:
    """A value from a config or an endpoint, as literal text on one line of Markdown.

    Viewers render HTML inside Markdown, so ``<``, ``>`` and ``&`` become entities; Markdown's
    own syntax characters are escaped with a backslash (``_`` only where it could start or end
    emphasis, so that payload_en_1-100.jsonl reads as it is); line breaks become spaces.
    Safe in table cells, headings and prose. ``limit`` shortens the value first.
    """
    if value is None:
        return MISSING
    raw = _LINE_BREAKS.sub(" ", str(value))
    if limit is not None and len(raw) > limit:
        raw = raw[: max(limit - 3, 0)].rstrip() + "..."
    raw = _MARKDOWN_SYNTAX.sub(lambda m: "\\" + m.group(0), raw)
    return "".join(_HTML.get(ch, ch) for ch in raw)


def code(value: Any, in_table: bool = True) -> str:
    """A value as an inline code span: literal whatever it holds (HTML is not rendered inside one).

    The span's backtick fence is longer than any run of backticks in the value; in a table
    cell pipes are escaped (GitHub splits cells before it reads code spans).
    """
    if value is None:
        return MISSING
    raw = _LINE_BREAKS.sub(" ", str(value))
    if not raw:
        return ""
    if in_table:
        raw = raw.replace("|", "\\|")
    runs = [len(run) for run in re.findall(r"`+", raw)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if raw.startswith("`") or raw.endswith("`") else ""
    return f"{fence}{pad}{raw}{pad}{fence}"


def fence_for(content: str) -> str:
    """A code fence that no line of ``content`` can close: longer than any backtick run in it."""
    runs = [len(run) for run in re.findall(r"`+", content)]
    return "`" * max(3, max(runs, default=0) + 1)


FILTERS = {
    "seconds": seconds,
    "millis": millis,
    "usd": usd,
    "percent": percent,
    "number": number,
    "signed_percent": signed_percent,
    "points": points,
    "timestamp": timestamp,
    "gib": gib,
    "text": text,
    "cell": text,  # the older name of `text`
    "code": code,
}
