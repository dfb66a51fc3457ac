"""The live progress display: cell, requests done, errors and the running p50 latency."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from fmb.collector.runner import Cell, CellStats
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text


class _StatsColumn(ProgressColumn):
    """Errors and p50 latency of the cell, read from its live stats at each refresh."""

    def render(self, task: Task) -> Text:
        stats: CellStats | None = task.fields.get("stats")
        if stats is None:
            return Text("")
        p50 = stats.p50_ms()
        latency = f"p50 {p50 / 1000:.3f} s" if p50 is not None else "p50 -"
        style = "red" if stats.errors else "green"
        return Text.assemble((f"errors {stats.errors}", style), "  ", latency)


class CellProgress(AbstractContextManager["CellProgress"]):
    """One progress row per cell; ``quiet`` shows nothing."""

    def __init__(self, quiet: bool, console: Console | None = None) -> None:
        self.quiet = quiet
        self._progress = None if quiet else Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _StatsColumn(),
            TimeElapsedColumn(),
            console=console,
            refresh_per_second=4,
        )
        self._task: Any = None

    def __enter__(self) -> CellProgress:
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress:
            self._progress.stop()

    def start_cell(self, cell: Cell, stats: CellStats) -> None:
        if self._progress:
            self._task = self._progress.add_task(cell.label, total=cell.requests, stats=stats)

    def update(self, stats: CellStats) -> None:
        if self._progress and self._task is not None:
            self._progress.update(self._task, completed=stats.done)
