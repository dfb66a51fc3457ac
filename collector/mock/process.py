"""Run the mock endpoint in a child process (its own event loop and CPU), for tests and benchmarks,
or in a thread of this process (its own event loop) when a setting has no command-line option."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fmb.collector.mock.behaviour import MockSettings

_URL = re.compile(r"listening on (http://\S+)")


@contextmanager
def mock_server(
    startup_timeout_s: float = 30.0,
    *,
    fmb: Sequence[str] = (sys.executable, "-m", "fmb"),
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    **settings: Any,
) -> Iterator[str]:
    """Start ``fmb mock-server`` on a free port; yield its base URL; stop it afterwards.

    ``settings`` are the command's options without dashes, e.g. ``ttft_ms=40``; ``fmb`` is
    the command that runs fmb (another install's, for instance).
    """
    args = [*fmb, "mock-server", "--port", "0"]
    for key, value in settings.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd, env=env)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # the first line names the URL
            lines.append(line)
            match = _URL.search(line)
            if match:
                # Keep reading what it prints so that a full pipe never blocks it.
                threading.Thread(target=proc.stdout.read, daemon=True).start()
                yield match.group(1)
                break
        else:
            raise RuntimeError("the mock server exited before listening:\n" + "".join(lines))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=startup_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def mock_server_thread(startup_timeout_s: float = 30.0, **settings: Any) -> Iterator[str]:
    """Serve the mock on a free port in a thread of this process; yield its base URL; stop it afterwards.

    ``settings`` are :class:`MockSettings` fields, e.g. ``max_running=2``. The mock shares
    this process's CPU (and GIL) with the caller: for tests of behaviour, not of timing.
    """
    import asyncio

    from aiohttp import web

    from fmb.collector.mock.server import make_app

    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(MockSettings(**settings)), access_log=None)
    thread = threading.Thread(target=loop.run_forever, name="fmb-mock-server", daemon=True)
    thread.start()

    async def start() -> str:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(startup_timeout_s)
    finally:
        try:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(startup_timeout_s)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=startup_timeout_s)
            loop.close()
