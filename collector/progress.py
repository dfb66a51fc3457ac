"""The progress display: an overall bar above one row per cell, or one log line per finished cell.

On a terminal a live display shows the whole run (cells done, requests done, time left) and
each cell (requests done, errors and the running p50 latency). When the console is not a
terminal (a log file, CI, a pipe) nothing is redrawn: one plain line is written per finished
cell, never wrapped.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Any

from rich import get_console
from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

from fmb.collector.runner import Cell, CellStats


def _p50_text(stats: CellStats) -> str:
    p50 = stats.p50_ms()
    return f"p50 {p50 / 1000:.3f} s" if p50 is not None else "p50 -"


class _StatsColumn(ProgressColumn):
    """Errors and p50 latency of the cell, read from its live stats at each refresh."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))

    def render(self, task: Task) -> Text:
        stats: CellStats | None = task.fields.get("stats")
        if stats is None:
            return Text("")
        style = "red" if stats.errors else "green"
        return Text.assemble((f"errors {stats.errors}", style), "  ", _p50_text(stats))


class _CellsColumn(ProgressColumn):
    """Cells finished out of all cells of the run (the overall row)."""

    def render(self, task: Task) -> Text:
        return Text(f"cells {task.fields['cells_done']}/{task.fields['total_cells']}")


class CellProgress(AbstractContextManager["CellProgress"]):
    """Progress of a run's cells; ``quiet`` shows nothing.

    ``total_cells`` and ``total_requests`` (measured requests, warm-ups left out) size the
    overall bar; without them only the per-cell rows (or lines) are shown.
    """

    def __init__(
        self,
        quiet: bool,
        console: Console | None = None,
        *,
        total_cells: int | None = None,
        total_requests: int | None = None,
    ) -> None:
        self.quiet = quiet
        self.console = console or get_console()
        self.total_cells = total_cells
        self.total_requests = total_requests
        self.live = not quiet and self.console.is_terminal
        self.cells_done = 0
        self.requests_done = 0  # measured requests of the finished cells
        self._cell: Cell | None = None
        self._stats: CellStats | None = None
        self._started = 0.0
        self._overall: Progress | None = None
        self._cells: Progress | None = None
        self._display: Live | None = None
        self._overall_task: Any = None
        self._task: Any = None
        if self.live:
            self._cells = Progress(
                TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
                BarColumn(bar_width=12),
                MofNCompleteColumn(),
                _StatsColumn(),
                TimeElapsedColumn(),
                console=self.console,
                expand=True,  # the label gives way (with an ellipsis) on a narrow terminal
            )
            renderables: list[Any] = [self._cells]
            if total_cells is not None and total_requests is not None:
                self._overall = Progress(
                    TextColumn("[bold]all cells"),
                    BarColumn(bar_width=None),
                    _CellsColumn(),
                    TextColumn("requests"),
                    MofNCompleteColumn(),
                    TextColumn("ETA"),
                    TimeRemainingColumn(),
                    console=self.console,
                )
                self._overall_task = self._overall.add_task(
                    "all cells", total=total_requests, cells_done=0, total_cells=total_cells
                )
                renderables.insert(0, self._overall)
            self._display = Live(Group(*renderables), console=self.console, refresh_per_second=4)

    def __enter__(self) -> CellProgress:
        if self._display:
            self._display.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish_cell()
        if self._display:
            self._display.stop()

    def start_cell(self, cell: Cell, stats: CellStats) -> None:
        """A cell starts (``cell.requests``: the measured requests it will send)."""
        self._finish_cell()
        self._cell, self._stats, self._started = cell, stats, time.monotonic()
        if self._cells:
            # What changes most often first: a narrow terminal cuts the experiment name, not the concurrency.
            label = f"c={cell.concurrency} | {cell.payload_file} | {cell.experiment}"
            self._task = self._cells.add_task(label, total=cell.requests, stats=stats)

    def skip_cell(self, cell: Cell, why: str) -> None:
        """A planned cell that is not sent (a sweep stopped below it): counted as done, and logged."""
        self._finish_cell()
        self.cells_done += 1
        self._update_overall(self.requests_done)
        if not self.quiet:
            self.console.print(f"{cell.label}: {why}", soft_wrap=True, highlight=False, markup=False)

    def update(self, stats: CellStats) -> None:
        """The cell's stats changed; a cell whose every measured request is done is finished."""
        if self._cell is None:
            return
        if self._cells and self._task is not None:
            self._cells.update(self._task, completed=stats.done)
        self._update_overall(self.requests_done + stats.done)
        if stats.done >= self._cell.requests:
            self._finish_cell()

    def _update_overall(self, requests_done: int) -> None:
        if self._overall is not None:
            self._overall.update(self._overall_task, completed=requests_done, cells_done=self.cells_done)

    def _finish_cell(self) -> None:
        """Count the current cell as finished (whether or not it sent every request) and log it."""
        cell, stats = self._cell, self._stats
        if cell is None or stats is None:
            return
        self._cell = self._stats = None
        self.cells_done += 1
        self.requests_done += stats.done
        self._update_overall(self.requests_done)
        if not self.quiet and not self.live:
            self.console.print(
                self.line(cell, stats, time.monotonic() - self._started), soft_wrap=True, highlight=False, markup=False
            )

    def line(self, cell: Cell, stats: CellStats, elapsed_s: float) -> str:
        """The log line of a finished cell."""
        where = f"cell {self.cells_done}" + (f"/{self.total_cells}" if self.total_cells is not None else "")
        if self.total_requests is not None:
            where += f", requests {self.requests_done}/{self.total_requests}"
        sent = f"{stats.done} requests" if stats.done == cell.requests else f"{stats.done} of {cell.requests} requests"
        return (
            f"[{where}] {cell.label}: {sent}, {stats.errors} error{'s' if stats.errors != 1 else ''}, "
            f"{_p50_text(stats)}, {elapsed_s:.1f} s"
        )
