"""Run the mock endpoint in a child process (its own event loop and CPU), for tests and benchmarks."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
