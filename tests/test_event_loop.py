"""The collector's event loop: uvloop's where installed, with the objects from before it frozen for the GC."""

from __future__ import annotations

import asyncio
import gc

import pytest

from fmb.collector import event_loop


def test_run_returns_the_result_on_uvloop_with_the_old_objects_frozen() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> tuple[type, int]:
        return type(asyncio.get_running_loop()), gc.get_freeze_count()

    loop_type, frozen = event_loop.run(main())
    assert loop_type is uvloop.Loop
    assert frozen > 0
    assert gc.get_freeze_count() == 0  # unfrozen after the run


def test_an_error_in_the_run_still_unfreezes() -> None:
    async def main() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        event_loop.run(main())
    assert gc.get_freeze_count() == 0


def test_without_uvloop_asyncio_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_loop, "loop_factory", lambda: None)

    async def main() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert event_loop.run(main()).startswith("asyncio")
