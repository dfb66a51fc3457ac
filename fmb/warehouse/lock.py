"""One `fmb build` at a time per results folder, and a warehouse file that no other program holds.

DuckDB lets one process write a database file. Without these checks, a second build (or
a build while a BI tool or the DuckDB CLI has ``warehouse.duckdb`` open) fails inside dbt
with one traceback per thread. Here a second build waits for the first, and a file held by
another program is one clear error before dbt starts.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fmb.errors import FmbError

DEFAULT_WAIT_S = 120.0
_POLL_S = 0.2


def lock_path(results: Path) -> Path:
    return results / ".build.lock"


@contextmanager
def build_lock(
    results: Path, wait_s: float = DEFAULT_WAIT_S, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold an exclusive lock on RESULTS/.build.lock, waiting up to ``wait_s`` seconds for it.

    ``on_wait`` gets one message when another build holds the lock. The lock is
    ``flock``'s, so it goes with the process that holds it, even after ``kill -9``.
    """
    path = lock_path(results)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, results, wait_s, on_wait)
        yield
    finally:
        os.close(fd)  # releases the lock


def _acquire(fd: int, path: Path, results: Path, wait_s: float, on_wait: Callable[[str], None] | None) -> None:
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        except OSError as exc:
            raise FmbError(
                f"cannot lock {path}: {exc.strerror or exc}.",
                hint="fmb build locks this file so that two builds never write one warehouse at once; "
                "put --results on a file system that supports flock (a local disk).",
            ) from None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FmbError(
                f"another fmb build is still running on {results} after waiting {wait_s:g} s.",
                hint="Build again when it has finished, or wait longer with `fmb build --wait SECONDS`.",
            )
        if not told and on_wait is not None:
            on_wait(f"another fmb build is running on {results}; waiting up to {wait_s:g} s")
            told = True
        time.sleep(min(_POLL_S, remaining))


def check_warehouse_free(warehouse: Path) -> None:
    """Raise :class:`FmbError` when another program has ``warehouse`` open (DuckDB's file lock)."""
    import duckdb

    try:
        duckdb.connect(str(warehouse)).close()
    except duckdb.Error as exc:
        message = str(exc)
        holder = re.search(r"Conflicting lock is held in (.+?) \(PID (\d+)\)", message)
        if holder is None and "lock" not in message.lower():
            raise FmbError(
                f"cannot open the warehouse {warehouse}: {message}",
                hint="Move the file away to build a new warehouse from raw/.",
            ) from None
        who = f" ({holder.group(1)}, PID {holder.group(2)})" if holder else ""
        raise FmbError(
            f"the warehouse {warehouse} is open in another program{who}, so fmb build cannot write it.",
            hint="Close that program (a DuckDB CLI, a notebook, a BI tool) or its connection, then build again.",
        ) from None
