"""How much time an HTTP client adds to the TTFT it measures, httpx against aiohttp.

Starts the mock endpoint (TTFT 40 ms, 5 ms between tokens, 32 tokens) in its own
process and streams chat completions through each client at several concurrency
levels, stamping the start just before the request is sent and the first content
chunk as it is read. The excess over 40 ms is what the client and the loopback network
add; the client's CPU time per streamed request is what limits how many requests one
collector process can time accurately. fmb's collector uses aiohttp for its lower CPU
cost per request.

    python bench/client_overhead.py [--requests-per-slot 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import aiohttp
import httpx

from fmb.collector.mock.process import mock_server

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello " * 50}], "stream": True, "max_tokens": 32}


def _first_content(line: str) -> bool:
    if not line.startswith("data: {"):
        return False
    choices = json.loads(line[6:]).get("choices") or []
    return bool(choices and choices[0].get("delta", {}).get("content"))


async def httpx_ttft(client: httpx.AsyncClient, url: str) -> float:
    start = time.perf_counter()
    ttft = None
    async with client.stream("POST", url, json=BODY) as response:
        async for line in response.aiter_lines():
            if ttft is None and _first_content(line):
                ttft = (time.perf_counter() - start) * 1000
    if ttft is None:
        raise RuntimeError("no content")
    return ttft


async def aiohttp_ttft(session: aiohttp.ClientSession, url: str) -> float:
    start = time.perf_counter()
    ttft = None
    async with session.post(url, json=BODY) as response:
        async for raw in response.content:
            if ttft is None and _first_content(raw.decode()):
                ttft = (time.perf_counter() - start) * 1000
    if ttft is None:
        raise RuntimeError("no content")
    return ttft


async def measure(kind: str, url: str, concurrency: int, per_slot: int) -> tuple[float, float]:
    """Median TTFT (ms) after the first round, and client CPU ms per request."""
    out: list[float] = []
    if kind == "httpx":
        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=64))
        one = lambda: httpx_ttft(client, url)  # noqa: E731
    else:
        client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        one = lambda: aiohttp_ttft(client, url)  # noqa: E731

    async def slot() -> None:
        for _ in range(per_slot):
            out.append(await one())

    cpu = time.process_time()
    try:
        await asyncio.gather(*(slot() for _ in range(concurrency)))
    finally:
        await (client.aclose() if kind == "httpx" else client.close())
    cpu_per_request = (time.process_time() - cpu) * 1000 / len(out)
    return statistics.median(out[concurrency:]), cpu_per_request  # the first round opens connections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests-per-slot", type=int, default=10)
    args = parser.parse_args()
    with mock_server(ttft_ms=40, itl_ms=5, output_tokens=32) as base:
        url = f"{base}/v1/chat/completions"
        print("client   concurrency  median TTFT (ms)  excess over 40 ms  client CPU per request (ms)", flush=True)
        for concurrency in (1, 4, 16):
            for kind in ("httpx", "aiohttp"):
                ttft, cpu = asyncio.run(measure(kind, url, concurrency, args.requests_per_slot))
                print(f"{kind:8} {concurrency:11}  {ttft:16.2f}  {ttft - 40:17.2f}  {cpu:26.2f}", flush=True)


if __name__ == "__main__":
    main()
