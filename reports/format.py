"""Jinja filters: how numbers are written in the report. Formatting only, no arithmetic
beyond changing units (milliseconds to seconds, fractions to percent)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

MISSING = "n/a"


def seconds(ms: float | None) -> str:
    """Milliseconds shown as seconds with 3 decimals."""
    return MISSING if ms is None else f"{ms / 1000:.3f}"


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


def timestamp(value: datetime | None) -> str:
    return MISSING if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def cell(value: Any) -> str:
    """Text for a Markdown table cell: no pipes or line breaks."""
    return MISSING if value is None else str(value).replace("|", "\\|").replace("\n", " ")


FILTERS = {
    "seconds": seconds,
    "millis": millis,
    "usd": usd,
    "percent": percent,
    "number": number,
    "signed_percent": signed_percent,
    "points": points,
    "timestamp": timestamp,
    "cell": cell,
}
