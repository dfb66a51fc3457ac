"""The split of a run's requests between shards (`fmb collect --shard I/N`), and bad --shard input."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fmb.cli import cli
from fmb.collector.runner import closed_loop
from fmb.collector.shard import WHOLE, Shard


@given(
    count=st.integers(1, 9),
    concurrency=st.integers(1, 40),
    warmup=st.integers(0, 25),
    rounds=st.integers(1, 6),
)
def test_the_shards_split_every_cell_completely_and_disjointly(
    count: int, concurrency: int, warmup: int, rounds: int
) -> None:
    shards = [Shard(i, count) for i in range(1, count + 1)]
    requests = concurrency * rounds  # FMBench's rule: whole rounds of `concurrency` requests
    warmups = range(warmup)
    measured = range(warmup, warmup + requests)

    for indices in (warmups, measured):
        parts = [s.indices(concurrency, indices) for s in shards]
        taken = Counter(i for part in parts for i in part)
        assert sorted(taken) == list(indices) and set(taken.values()) <= {1}  # complete, each index once

    slots = [s.slots(concurrency) for s in shards]
    assert sorted(w for part in slots for w in part) == list(range(concurrency))  # C in flight in all
    for shard, own in zip(shards, slots, strict=True):
        # A shard's share of the measured requests is its share of the slots: all run out together.
        assert len(shard.indices(concurrency, measured)) == rounds * len(own)
        assert all(shard.owns(concurrency, i) == (i % concurrency in own) for i in measured)


@given(concurrency=st.integers(1, 40), warmup=st.integers(0, 25), rounds=st.integers(1, 6))
def test_one_shard_is_the_whole_run(concurrency: int, warmup: int, rounds: int) -> None:
    indices = range(warmup + concurrency * rounds)
    assert WHOLE.indices(concurrency, indices) == list(indices)
    assert WHOLE.slots(concurrency) == list(range(concurrency))


def test_a_shard_runs_only_its_slots_each_index_once() -> None:
    shard = Shard(2, 3)
    concurrency = 7
    indices = shard.indices(concurrency, range(4, 4 + 3 * concurrency))
    sent: list[tuple[int, int]] = []
    in_flight = 0
    most = 0

    async def job(index: int, worker: int) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.001 * (index % 3))
        sent.append((index, worker))
        in_flight -= 1

    asyncio.run(closed_loop(concurrency, indices, job, shard.slots(concurrency)))
    assert sorted(i for i, _ in sent) == indices
    assert {w for _, w in sent} == {1, 4}  # slots 1 and 4 of 0..6 are shard 2 of 3's
    assert most == 2


def test_a_shard_without_slots_in_a_cell_sends_nothing_there() -> None:
    shard = Shard(4, 4)
    assert shard.slots(2) == [] and shard.indices(2, range(10)) == []
    sent: list[int] = []

    async def job(index: int, worker: int) -> None:
        sent.append(index)

    asyncio.run(closed_loop(2, shard.indices(2, range(10)), job, shard.slots(2)))
    assert sent == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1/2", Shard(1, 2)), ("2/2", Shard(2, 2)), (" 3 / 5 ", Shard(3, 5)), ("1/1", WHOLE)],
)
def test_shard_parses_i_of_n(text: str, expected: Shard) -> None:
    assert Shard.parse(text) == expected


def test_shard_names_its_files() -> None:
    assert Shard(2, 4).file_name("run", ".parquet") == "run-shard-2-of-4.parquet"
    assert WHOLE.file_name("run", ".parquet") == "run.parquet"
    assert Shard(2, 4).tag == "shard-2-of-4-" and WHOLE.tag == ""
    assert Shard.of_row({"shard": None, "shard_count": None}) == WHOLE  # a row written before shards
    assert Shard.of_row({"shard": 3, "shard_count": 4}) == Shard(3, 4)


@pytest.mark.parametrize("value", ["3/2", "0/2", "x", "1/0", "-1/2", "2", "1/2/3", ""])
def test_bad_shard_is_a_usage_error_naming_the_option(cli_runner, tmp_path, value: str) -> None:
    config = tmp_path / "config.yml"
    config.write_text("general: {name: x}\n", encoding="utf-8")
    result = cli_runner.invoke(cli, ["collect", str(config), "--run-id", "r1", "--shard", value])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--shard'" in result.output
    assert "I/N" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


def test_shard_needs_a_run_id_shared_by_the_shards(cli_runner, tmp_path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("general: {name: x}\n", encoding="utf-8")
    result = cli_runner.invoke(cli, ["collect", str(config), "--shard", "1/2"])
    assert result.exit_code == 2 and "--shard 1/2 needs --run-id" in result.output
    both = cli_runner.invoke(cli, ["collect", str(config), "--run-id", "a", "--resume", "b"])
    assert both.exit_code == 2 and "give one of them" in both.output
    empty = cli_runner.invoke(cli, ["collect", str(config), "--run-id", " ", "--shard", "1/2"])
    assert empty.exit_code == 2 and "Invalid value for '--run-id': a run id cannot be empty" in empty.output
