"""The event loop `fmb collect` sends its requests on: uvloop's where it is installed.

uvloop runs the loop's own work (sockets, timers, callbacks) in C, which leaves more of
the process's CPU for reading and timing responses; asyncio's loop is the fallback (on
Windows, which uvloop does not support, or where it is not installed).

While it runs, the objects that existed before it (modules, configs, tokenizers, the
prompts) are frozen out of Python's cyclic garbage collector: a full collection then
looks only at what the run made, instead of holding the loop for 100 ms and more over
everything the process ever loaded.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop factory, or None (asyncio's own loop) when uvloop cannot be imported."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the fastest event loop available, with what exists so far frozen."""
    gc.collect()
    gc.freeze()
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(main)
    finally:
        gc.unfreeze()
