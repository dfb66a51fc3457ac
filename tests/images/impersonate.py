"""Entry point of the test images that stand in for inference containers (tests only).

Each image is fmb's mock server behind the command line and file layout of the container
it impersonates, so that fmb's EC2 deployer runs its real code path against a real Docker
engine: the arguments it passes, the files it mounts and the ports it publishes must be
the ones the real image needs, or the container fails the way the real one would.

    impersonate.py vllm --model M [--port P] [...]    vLLM's OpenAI server (default port 8000)
    impersonate.py sglang python3 -m sglang.launch_server --model M --port P [...]
    impersonate.py djl                                DJL Serving: reads /opt/djl/conf/config.properties
                                                      and needs /opt/ml/model/serving.properties
    impersonate.py ollama                             Ollama on 11434: a model answers once pulled
    impersonate.py llama_server --host H --port P -m FILE | -hf REPO

A model id containing "fail-to-load" makes the server exit with an error after printing
a few log lines, as a server that cannot load its model does. Only standard-library and
aiohttp imports (the image has Debian's python3 and python3-aiohttp).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path

from aiohttp import web

from fmb.collector.mock.behaviour import MockSettings
from fmb.collector.mock.server import make_app

STARTUP_DELAY_S = 1.0  # a real server takes a while to load its model: fmb must wait for it


def _arg(args: list[str], name: str, default: str | None = None) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def _fail_if_asked(model: str | None) -> None:
    if model and "fail-to-load" in model:
        print(f"loading model {model} ...", flush=True)
        print("RuntimeError: CUDA out of memory while loading the weights", flush=True)
        sys.exit(3)


def _djl_port() -> int:
    conf = Path("/opt/djl/conf/config.properties")
    properties = Path("/opt/ml/model/serving.properties")
    if not conf.is_file():
        print(f"DJL: {conf} is missing", flush=True)
        sys.exit(2)
    if not properties.is_file():
        print(f"DJL: {properties} is missing; no model to load", flush=True)
        sys.exit(2)
    print("DJL: serving.properties:", flush=True)
    for line in properties.read_text().splitlines():
        print(f"  {line}", flush=True)
        if line.startswith("option.model_id="):
            _fail_if_asked(line.split("=", 1)[1])
    match = re.search(r"inference_address=http://[^:]+:(\d+)", conf.read_text())
    if not match:
        print("DJL: config.properties names no inference_address", flush=True)
        sys.exit(2)
    return int(match.group(1))


def _ollama(app: web.Application) -> None:
    pulled: set[str] = set()

    @web.middleware
    async def needs_pull(request: web.Request, handler):  # type: ignore[no-untyped-def]
        if request.path == "/api/generate":
            body = await request.json()
            if body.get("model") not in pulled:
                return web.json_response({"error": f"model '{body.get('model')}' not found"}, status=404)
        return await handler(request)

    async def tags(_: web.Request) -> web.Response:
        return web.json_response({"models": [{"name": name} for name in sorted(pulled)]})

    async def pull(request: web.Request) -> web.Response:
        body = await request.json()
        name = body.get("model") or body.get("name")
        _fail_if_asked(name)
        pulled.add(name)
        print(f"ollama: pulled {name}", flush=True)
        return web.json_response({"status": "success"})

    app.middlewares.append(needs_pull)
    app.router.add_get("/api/tags", tags)
    app.router.add_post("/api/pull", pull)


async def main(kind: str, args: list[str]) -> None:
    print(f"impersonating {kind}: args {args}", flush=True)
    print(f"HF_TOKEN is {'set' if os.environ.get('HF_TOKEN') else 'not set'}", flush=True)
    if kind == "djl":
        port = _djl_port()
    elif kind == "ollama":
        port = 11434
    elif kind == "llama_server":
        port = int(_arg(args, "--port", "8080") or 8080)
        _fail_if_asked(_arg(args, "-m") or _arg(args, "-hf"))
    else:  # vllm, sglang
        _fail_if_asked(_arg(args, "--model"))
        port = int(_arg(args, "--port", "30000" if kind == "sglang" else "8000") or 8000)
    time.sleep(STARTUP_DELAY_S)
    app = make_app(MockSettings(ttft_ms=5.0, itl_ms=1.0, output_tokens=8))
    if kind == "ollama":
        _ollama(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    print(f"listening on 0.0.0.0:{port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)  # PID 1 ignores it otherwise
    await stop.wait()
    print("stopping on SIGTERM", flush=True)
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
