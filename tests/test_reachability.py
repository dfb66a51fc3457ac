"""fmb checks that an endpoint is reachable without sending it a request it would count as load."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.test_collect import make_config, prepare_and_collect


@pytest.fixture
def recording_server() -> Iterator[tuple[str, list[str]]]:
    """An OpenAI-compatible server on port 0 (plain JSON answers) that records every request line."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: object) -> None:
            pass

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            seen.append(f"GET {self.path}")
            self._answer(404, b"{}")

        def do_POST(self) -> None:
            seen.append(f"POST {self.path}")
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            answer = {
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 1, "total_tokens": 51},
            }
            self._answer(200, json.dumps(answer).encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_collect_sends_only_the_measured_requests(recording_server, tmp_path: Path, cli_runner) -> None:
    url, seen = recording_server
    config = make_config(tmp_path, url, concurrency=(1,), rounds=2, prompts=2, stream=False)
    result = prepare_and_collect(cli_runner, config, tmp_path / "results")
    assert result.exit_code == 0, result.output
    # Only the measured requests, and no GET / (or any other probe) before them; the telemetry
    # scraper's guess at a Prometheus page (GET /metrics, see collector/server_metrics.py) is
    # the one other call, and no server counts it as inference load.
    assert [line for line in seen if line != "GET /metrics"] == ["POST /v1/chat/completions"] * 2


def test_an_endpoint_nobody_listens_on_is_one_clear_error(tmp_path: Path, cli_runner) -> None:
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = make_config(tmp_path, f"http://127.0.0.1:{port}", concurrency=(1,), rounds=1, prompts=1)
    result = prepare_and_collect(cli_runner, config, tmp_path / "results")
    assert result.exit_code == 1
    assert f"cannot reach http://127.0.0.1:{port}/v1/chat/completions (ConnectionRefusedError" in result.output
    assert "Nothing was sent and no run was recorded." in result.output
    assert not (tmp_path / "results" / "raw" / "runs").exists()
