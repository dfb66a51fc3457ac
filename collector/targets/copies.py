"""Several copies of one model, each behind its own URL (FMBench's model_copies).

FMBench puts an nginx load balancer in front of the copies; fmb spreads the requests
itself: each request goes to the copy with the fewest requests in flight (the lowest
number among equals), and its row records which copy served it
(``requests.model_copy``), so per-copy latency and load are a query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from fmb.collector.targets.base import Recorder, Request, Target, Usage
from fmb.config import LoadedConfig, ResolvedExperiment


class CopiesTarget(Target):
    """One target per copy; ``send`` picks the least busy copy."""

    def __init__(self, copies: Sequence[Target]) -> None:
        if not copies:
            raise ValueError("CopiesTarget needs at least one copy")
        self.copies = list(copies)
        self.in_flight = [0] * len(self.copies)
        self.backend = self.copies[0].backend
        self.stream = self.copies[0].stream

    @classmethod
    def for_urls(
        cls, exp: ResolvedExperiment, loaded: LoadedConfig, max_connections: int, urls: Sequence[str]
    ) -> CopiesTarget:
        from fmb.collector.targets import make_target

        return cls([make_target(replace(exp, endpoint=url), loaded, max_connections) for url in urls])

    def describe(self) -> str:
        return f"{len(self.copies)} copies: " + ", ".join(copy.describe() for copy in self.copies)

    async def close(self) -> None:
        for copy in self.copies:
            await copy.close()

    async def check_reachable(self) -> None:
        for copy in self.copies:
            await copy.check_reachable()

    async def send(self, request: Request, rec: Recorder) -> Usage:
        index = min(range(len(self.copies)), key=lambda i: self.in_flight[i])
        rec.model_copy = index + 1
        self.in_flight[index] += 1
        try:
            return await self.copies[index].send(request, rec)
        finally:
            self.in_flight[index] -= 1
