"""Sharded collection: `fmb collect --shard I/N` sends shard I's part of a run's requests.

N collectors started with the same ``--run-id`` (on one host or several, writing into one
results folder) split every cell between them so that, run at the same time, they put
the load of one collector on the server:

* A cell of concurrency C has C worker slots, 0 .. C-1. Shard I runs the slots ``w`` with
  ``w mod N == I - 1``, so the shards' slots add up to C requests in flight.
* Request index ``k`` (warm-ups first, as in an unsharded run) belongs to slot
  ``k mod C`` and so to the shard that runs that slot. A shard therefore sends a share of
  the cell's requests proportional to its slots, and all shards run out together. Inside
  a shard its slots share its indices continuously, as the one collector's slots do; the
  ``worker`` column holds the slot that sent the request, the ``shard`` column the shard.
* A shard with no slot in a cell (C < N) sends nothing there.

Request ``k`` sends the same prompt (``k`` modulo the payload file's prompts) whichever
shard sends it, so the union of the shards is the unsharded run's request set, each
request once. Shards do not wait for each other between cells: started together, they
stay together as long as their requests take about as long.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_PATTERN = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``; ``Shard(1, 1)`` is a run on one collector."""

    index: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: I must be between 1 and N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"``; ValueError with a message that says what is allowed."""
        found = _PATTERN.fullmatch(text)
        if not found:
            raise ValueError(f"{text!r} is not I/N (e.g. 1/2: the first of two shards)")
        index, count = int(found[1]), int(found[2])
        if count < 1 or not 1 <= index <= count:
            raise ValueError(f"{text!r}: no such shard; give I/N with I from 1 to N (e.g. 2/2: the second of two)")
        return cls(index, count)

    @property
    def is_whole(self) -> bool:
        return self.count == 1

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def tag(self) -> str:
        """What the shard's file names start with after their table's prefix ('' for a whole run)."""
        return "" if self.is_whole else f"shard-{self.index}-of-{self.count}-"

    def file_name(self, stem: str, suffix: str) -> str:
        """``<stem><suffix>`` for a whole run, ``<stem>-shard-I-of-N<suffix>`` for a shard's own file."""
        return f"{stem}{suffix}" if self.is_whole else f"{stem}-shard-{self.index}-of-{self.count}{suffix}"

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> Shard:
        """The shard a raw row names; rows written before fmb recorded shards are a whole run's."""
        return cls(row.get("shard") or 1, row.get("shard_count") or 1)

    def slots(self, concurrency: int) -> list[int]:
        """The cell's worker slots this shard runs."""
        return [w for w in range(concurrency) if w % self.count == self.index - 1]

    def owns(self, concurrency: int, index: int) -> bool:
        """Request ``index`` of a cell of this concurrency is this shard's to send."""
        return (index % concurrency) % self.count == self.index - 1

    def indices(self, concurrency: int, indices: Iterable[int]) -> list[int]:
        """This shard's part of ``indices``, in order."""
        return [i for i in indices if self.owns(concurrency, i)]


WHOLE = Shard()
