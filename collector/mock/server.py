"""`fmb mock-server`: an endpoint with exact timings and fault injection, for tests and calibration."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from fmb.collector.mock import aws_runtime, container_apis, metrics, openai_api
from fmb.collector.mock.behaviour import Behaviour, MockSettings


def make_app(settings: MockSettings) -> web.Application:
    behaviour = Behaviour(settings)
    # Every generation waits for one of the max_running slots and is counted for /metrics.
    app = web.Application(middlewares=[metrics.queue(behaviour)])
    app["behaviour"] = behaviour

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "requests": behaviour.requests, "completed": behaviour.completed})

    app.router.add_get("/", health)
    app.router.add_get("/health", health)
    app.router.add_routes(metrics.routes(behaviour))
    app.router.add_routes(openai_api.routes(behaviour))
    app.router.add_routes(container_apis.routes(behaviour))
    app.router.add_routes(aws_runtime.sagemaker_routes(behaviour))
    app.router.add_routes(aws_runtime.bedrock_routes(behaviour))
    return app


async def serve(settings: MockSettings, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve until cancelled; print the base URL (with the real port) on its own line first."""
    runner = web.AppRunner(make_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"fmb mock server listening on http://{host}:{bound}", flush=True)
    sys.stdout.flush()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
