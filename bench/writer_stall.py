"""How long the request writer holds up the event loop, without a server: rows only.

Makes realistic request rows (64 streamed chunks, the completion text, token counts by
the tests' tokenizer) with the collector's RowMaker and hands them to its RequestWriter
on an event loop at a steady rate, as the runner does, while a probe task asks to wake
every millisecond and notes how late it woke. Prints the loop's lateness (p50, p99,
max), the loop's time per row inside ``writer.add`` and the process's CPU per row.
A flush that converts rows while holding the GIL shows as a long lateness every
``max_rows`` rows; isolated from a server's noise, this is the writer's own share of
the stalls that bench/side_by_side.py sees.

    python bench/writer_stall.py [--rows 20000] [--rate 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

from fmb.collector.runner import Cell, RowMaker
from fmb.collector.targets.base import Recorder, Request, Usage
from fmb.collector.writer import RequestWriter
from fmb.prepare.tokens import HFTokenizer, WordRule
from fmb.redact import Redactor

TOKENIZER = Path(__file__).parent.parent / "tests/fixtures/tokenizers/mistral-7b/tokenizer.json"


def recorder(tokens: int) -> Recorder:
    rec = Recorder()
    rec.start()
    for _ in range(tokens):
        rec.content(" tok")
    rec.finish()
    rec.http_status = 200
    return rec


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime


async def run(rows: int, rate: float, tokens: int, folder: Path) -> None:
    counter = HFTokenizer(TOKENIZER) if TOKENIZER.is_file() else WordRule()
    maker = RowMaker("run", True, counter, Redactor())
    writer = RequestWriter(folder, counter)
    cell = Cell("exp", "p.jsonl", 32, rows)
    prompts = [Request(f"p{i}", f"prompt {i} " + "lorem ipsum " * 20, {}) for i in range(256)]
    for request in prompts:
        maker.prompt_tokens(request)
    lateness: list[float] = []
    done = False

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while not done:
            before = loop.time()
            await asyncio.sleep(0.001)
            lateness.append((loop.time() - before - 0.001) * 1000)

    probing = asyncio.create_task(probe())
    in_add = 0.0
    cpu, start = cpu_s(), time.perf_counter()
    for index in range(rows):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        rec = recorder(tokens)
        t0 = time.perf_counter()
        writer.add(maker.row(cell, index, index % 32, prompts[index % 256], rec, Usage(50, tokens), None, False))
        in_add += time.perf_counter() - t0
    await asyncio.to_thread(writer.flush)
    done = True
    await probing
    writer.close()
    cpu = cpu_s() - cpu
    lateness.sort()
    n = len(lateness)
    print(
        f"{rows} rows at {rate:g}/s: loop lateness p50 {lateness[n // 2]:.2f} ms, "
        f"p99 {lateness[int(n * 0.99)]:.2f} ms, max {lateness[-1]:.2f} ms; "
        f"row + writer.add on the loop {in_add * 1e6 / rows:.1f} µs/row; "
        f"process CPU {cpu * 1e6 / rows:.1f} µs/row (the recorder's making included); "
        f"{sum(1 for _ in folder.glob('part-*.parquet'))} parts",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=2000.0, help="rows per second")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.setswitchinterval(0.001)  # as fmb collect sets it
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(args.rows, args.rate, args.tokens, Path(tmp)))


if __name__ == "__main__":
    main()
