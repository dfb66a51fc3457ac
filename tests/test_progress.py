"""The collector's progress display: an overall bar on a terminal, one line per finished cell elsewhere."""

from __future__ import annotations

import re
from io import StringIO

from rich.console import Console

from fmb.collector.progress import CellProgress
from fmb.collector.runner import Cell, CellStats

CELLS = [
    Cell("a-very-long-experiment-name", "payload_en_1-100.jsonl", 1, 3),
    Cell("a-very-long-experiment-name", "payload_en_1000-2000.jsonl", 16, 2),
]


def run(progress: CellProgress, latencies: list[list[float | None]]) -> None:
    """Feed the cells as the collector does: update after each row, and once more when the cell ends."""
    with progress:
        for cell, values in zip(CELLS, latencies, strict=True):
            stats = CellStats()
            progress.start_cell(cell, stats)
            for ms in values:
                progress.update(stats)  # the collector's sink runs before the stats count the request
                stats.done += 1
                if ms is None:
                    stats.errors += 1
                else:
                    stats.add_latency(ms)
            progress.update(stats)


def console(terminal: bool) -> tuple[Console, StringIO]:
    out = StringIO()
    return Console(file=out, force_terminal=terminal, width=80, color_system=None), out


def test_not_a_terminal_logs_one_unwrapped_line_per_finished_cell() -> None:
    con, out = console(False)
    run(CellProgress(False, con, total_cells=2, total_requests=5), [[1000, 3000, None], [250, 750]])
    lines = out.getvalue().splitlines()
    assert lines == [
        "[cell 1/2, requests 3/5] a-very-long-experiment-name | payload_en_1-100.jsonl | c=1: 3 requests, "
        "1 error, p50 2.000 s, " + lines[0].rsplit(", ", 1)[1],
        "[cell 2/2, requests 5/5] a-very-long-experiment-name | payload_en_1000-2000.jsonl | c=16: 2 requests, "
        "0 errors, p50 0.500 s, " + lines[1].rsplit(", ", 1)[1],
    ]
    assert all(len(line) > 80 for line in lines)  # one line each, however wide the console
    assert all(re.fullmatch(r"\d+\.\d s", line.rsplit(", ", 1)[1]) for line in lines)
    assert "\x1b" not in out.getvalue()  # no live redrawing


def test_a_cell_cut_short_is_logged_when_the_next_starts_or_the_run_ends() -> None:
    con, out = console(False)
    run(CellProgress(False, con, total_cells=2, total_requests=5), [[1000], [None]])
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "[cell 1/2, requests 1/5]" in lines[0] and "c=1: 1 of 3 requests, 0 errors, p50 1.000 s" in lines[0]
    assert "[cell 2/2, requests 2/5]" in lines[1] and "c=16: 1 of 2 requests, 1 error, p50 -" in lines[1]


def test_a_terminal_shows_the_overall_bar_above_the_cells() -> None:
    con, out = console(True)
    progress = CellProgress(False, con, total_cells=2, total_requests=5)
    run(progress, [[1000, 3000, None], [250, 750]])
    frame = re.sub(r"\x1b\[\?25[lh]", "", out.getvalue().split("\x1b[2K")[-1])  # the last frame, cursor codes out
    overall, first, second = [line for line in frame.splitlines() if line.strip()]
    assert "all cells" in overall and "cells 2/2" in overall and "requests 5/5" in overall and "ETA" in overall
    assert first.startswith("c=1 | payload_en_1-100")
    assert "3/3 errors 1  p50 2.000 s" in first
    assert second.startswith("c=16 | payload_en_1000-2") and "2/2 errors 0  p50 0.500 s" in second
    assert all(len(line) <= 80 for line in (first, second))  # a narrow terminal shortens the label, no wrapping
    assert "[cell 1/2" not in out.getvalue()  # no log lines on a terminal


def test_the_overall_bar_counts_requests_while_a_cell_runs() -> None:
    con, _ = console(True)
    progress = CellProgress(False, con, total_cells=2, total_requests=5)
    with progress:
        stats = CellStats()
        progress.start_cell(CELLS[0], stats)
        stats.done = 2
        progress.update(stats)
        assert progress._overall is not None
        (task,) = progress._overall.tasks
        assert (task.completed, task.total, task.fields["cells_done"]) == (2, 5, 0)
        stats.done = 3
        progress.update(stats)
        assert (task.completed, task.fields["cells_done"]) == (3, 1)


def test_quiet_shows_nothing() -> None:
    for terminal in (True, False):
        con, out = console(terminal)
        run(CellProgress(True, con, total_cells=2, total_requests=5), [[1000, 3000, None], [250, 750]])
        assert out.getvalue() == ""
