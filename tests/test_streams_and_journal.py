"""Fast unit tests: SSE and JSON-lines parsing, the OpenAI end marker, and the row journal."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmb.collector.journal import Journal, read_segment, read_table, segments
from fmb.collector.recovery import compact_journals
from fmb.collector.schemas import REQUESTS
from fmb.collector.targets.http import loads
from fmb.collector.targets.openai import openai_chunk, openai_whole
from fmb.collector.targets.streams import json_lines, sse_data
from fmb.collector.writer import RequestWriter, claim_part
from fmb.prepare.tokens import WordRule
from tests.rawdata import fake_rows


class Pieces:
    """What iter_any of an aiohttp StreamReader yields: the body in arbitrary pieces."""

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = pieces

    async def iter_any(self):
        for piece in self.pieces:
            yield piece


def events(*pieces: bytes) -> list[str]:
    """The data of the events, as the target reads them, read after read."""

    async def read() -> list[str]:
        return [d.decode() async for batch in sse_data(Pieces(*pieces)) for d in batch]  # type: ignore[arg-type]

    return asyncio.run(read())


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        ((b'data: {"a":1}\n\n',), ['{"a":1}']),
        ((b"data: x\r\n\r\ndata: y\n\n",), ["x", "y"]),
        (
            (
                b"data: x\r\n",
                b"\r\ndata: y\r\r",
            ),
            ["x", "y"],
        ),  # CRLF split between reads, CR alone
        ((b"data: a\ndata: b\n\n",), ["a\nb"]),  # multi-line data joins with LF
        ((b"da", b"ta: spl", b"it\n", b"\n"), ["split"]),  # split anywhere
        ((b": keep-alive\n\ndata: z\n\n",), ["z"]),  # a comment is no event
        ((b"event: error\ndata: boom\n\n",), ["boom"]),
        ((b"data:nospace\n\n",), ["nospace"]),
        ((b"data\n\ndata: after\n\n",), ["after"]),  # a bare data field: empty data, no event
        ((b"id: 3\nretry: 10\n\n",), []),  # no data: nothing to dispatch
        ((b"data: tail-without-blank-line",), ["tail-without-blank-line"]),
        # A line separator inside the JSON text is no line end (only CR and LF are).
        (('data: {"t":"a\u2028b"}\n\n'.encode(),), ['{"t":"a\u2028b"}']),
    ],
)
def test_sse_framing(pieces: tuple[bytes, ...], expected: list[str]) -> None:
    assert events(*pieces) == expected


def test_one_read_hands_over_all_its_events_at_once() -> None:
    async def read() -> list[list[bytes]]:
        return [batch async for batch in sse_data(Pieces(b"data: 1\n\ndata: 2\n\nda", b"ta: 3\n\n"))]  # type: ignore[arg-type]

    assert asyncio.run(read()) == [[b"1", b"2"], [b"3"]]


def test_json_lines_split_across_pieces() -> None:
    async def read(*pieces: bytes) -> list[bytes]:
        return [line async for batch in json_lines(Pieces(*pieces)) for line in batch]  # type: ignore[arg-type]

    assert asyncio.run(read(b'{"a":', b'1}\n\n{"b":2}')) == [b'{"a":1}', b'{"b":2}']


def test_loads_reads_what_orjson_refuses_as_the_standard_library_does() -> None:
    assert loads(b'{"a": [1, 2.5], "b": null}') == {"a": [1, 2.5], "b": None}
    assert loads(b'{"x": NaN, "big": 123456789012345678901234567890}')["big"] == 123456789012345678901234567890
    with pytest.raises(ValueError):
        loads(b"<html>")


@pytest.mark.parametrize(
    ("data", "text", "final"),
    [
        ({"choices": [{"delta": {"content": "hi"}, "finish_reason": None}]}, "hi", False),
        ({"choices": [{"delta": {}, "finish_reason": "stop"}]}, "", True),
        ({"choices": [{"text": "x", "finish_reason": "length"}]}, "x", True),
        ({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}, "", False),
    ],
)
def test_openai_chunk_end_marker(data: dict, text: str, final: bool) -> None:
    chunk = openai_chunk(data, chat="text" not in str(data))
    assert (chunk.text, chunk.final) == (text, final)


@pytest.mark.parametrize("body", [{}, {"status": "ok"}, {"choices": "nope"}])
def test_a_whole_answer_without_choices_is_not_an_answer(body: dict) -> None:
    with pytest.raises(KeyError):
        openai_whole(body, chat=True)


def rows(n: int) -> list[dict]:
    import random

    return fake_rows("r1", "e1", "p.jsonl", 2, n, random.Random(1), datetime(2026, 1, 1, tzinfo=UTC), {"ok": 1})


def mixed_rows(n: int, seed: int = 1) -> list[dict]:
    """Rows of every status."""
    import random

    return fake_rows("r1", "e1", "p.jsonl", 2, n, random.Random(seed), datetime(2026, 1, 1, tzinfo=UTC))


def test_journal_round_trip_and_a_torn_last_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    written = rows(5)
    for row in written:
        journal.append(row)
    segment = journal.rotate()
    assert segment is not None and segments(tmp_path) == [segment]
    with open(segment, "ab") as handle:
        handle.write(b'{"run_id": "r1", "experi')  # the kill came mid-write
    assert list(read_segment(segment)) == written
    assert journal.rotate() is None  # nothing appended since


def test_the_writer_deletes_a_segment_once_its_rows_are_in_a_part(tmp_path: Path) -> None:
    writer = RequestWriter(tmp_path, max_rows=3)
    for row in rows(7):
        writer.add(row)
    assert segments(tmp_path)  # at least the segment of the 7th row, which no part holds yet
    writer.flush()
    assert segments(tmp_path) == []
    assert sum(pq.read_table(p).num_rows for p in tmp_path.glob("part-*.parquet")) == 7
    writer.close()


def test_compaction_skips_rows_already_in_a_part(tmp_path: Path) -> None:
    """A kill between writing a part and deleting its segment leaves both: the rows count once."""
    writer = RequestWriter(tmp_path, max_rows=100)
    batch = rows(4)
    for row in batch:
        writer.add(row)
    segment = writer._journal.rotate()
    # The part is written, the segment not yet deleted.
    claim_part(tmp_path, pa.Table.from_pylist(batch, schema=REQUESTS))
    assert segment is not None and segment.exists()
    recovered = compact_journals(tmp_path, WordRule())
    assert recovered == []
    assert segments(tmp_path) == []
    assert sum(pq.read_table(p).num_rows for p in tmp_path.glob("part-*.parquet")) == 4


# Text as a server may send it: any Unicode a JSON string can carry (no lone surrogates), quotes,
# backslashes, control characters and new lines included.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@st.composite
def request_rows(draw: st.DrawFn) -> list[dict]:
    """Rows as RowMaker makes them, with the values that are hard to carry through JSON."""
    out = []
    for i, row in enumerate(mixed_rows(draw(st.integers(1, 6)), draw(st.integers(0, 1000)))):
        ok = row["status"] == "ok"
        gaps_ns = draw(
            st.lists(st.integers(0, 10**12), max_size=5)
        )  # chunk gaps are ns / 1e6, as the runner makes them
        started = row["started_at"] + timedelta(microseconds=draw(st.integers(0, 10**9)))
        row.update(
            request_index=draw(st.integers(0, 2**53)),
            started_at=started,
            ended_at=started + timedelta(microseconds=draw(st.integers(0, 10**10))),
            ttft_ms=draw(st.none() | st.floats(0, 1e9)) if ok else None,
            e2e_latency_ms=draw(st.floats(0, 1e12)),
            chunk_gaps_ms=[g / 1e6 for g in gaps_ns] if ok else None,
            completion_text=draw(TEXT) if ok else None,
            error_message=None if ok else draw(TEXT),
            prompt_id=draw(TEXT) + str(i),
        )
        out.append(row)
    return out


@settings(max_examples=60, deadline=None)
@given(request_rows())
def test_a_segment_reads_back_as_the_rows_convert(batch: list[dict]) -> None:
    """The writer thread reads a closed segment with pyarrow's JSON reader: the same table as the rows give."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp))
        for row in batch:
            journal.append(row)
        segment = journal.rotate()
        assert segment is not None
        table = read_table(segment)
    expected = pa.Table.from_pylist(batch, schema=REQUESTS)
    assert table.schema.equals(REQUESTS, check_metadata=True)
    assert table.to_pylist() == expected.to_pylist()


def test_a_long_line_and_an_empty_segment_read_back(tmp_path: Path) -> None:
    """A completion far longer than pyarrow's default block fits its block; an empty segment is no rows."""
    journal = Journal(tmp_path)
    batch = rows(3)
    batch[0]["completion_text"] = "é" * 3_000_000
    for row in batch:
        journal.append(row)
    segment = journal.rotate()
    assert segment is not None
    assert read_table(segment).to_pylist() == pa.Table.from_pylist(batch, schema=REQUESTS).to_pylist()
    empty = tmp_path / ".journal-empty.jsonl"
    empty.touch()
    assert read_table(empty).num_rows == 0 and read_table(empty).schema.equals(REQUESTS)


def test_the_writer_counts_completion_tokens_of_ok_rows_only(tmp_path: Path) -> None:
    """The parts hold the rows as added, with the client's completion tokens of the ok rows counted."""
    batch = mixed_rows(40)
    for row in batch:
        row["completion_tokens_client"] = None
        row["completion_text"] = "one two three" if row["status"] == "ok" else None
    assert {r["status"] for r in batch} >= {"ok", "error"}
    counted = next(r for r in batch if r["status"] == "ok")
    counted["completion_tokens_client"] = 99  # a count the row came with is kept
    writer = RequestWriter(tmp_path, WordRule(), max_rows=7)
    for row in batch[:10]:
        writer.add(row)
    writer.flush()  # a cell's end: a part of 3 rows
    for row in batch[10:]:
        writer.add(row)
    writer.close()
    assert writer.rows_written == 40 and len(writer.files) == 7
    written = pa.concat_tables(pq.read_table(p) for p in sorted(tmp_path.glob("part-*.parquet"))).to_pylist()
    three = WordRule().count_completion("one two three")
    expected = [
        r | {"completion_tokens_client": r["completion_tokens_client"] or three if r["status"] == "ok" else None}
        for r in batch
    ]
    assert (
        sorted(written, key=lambda r: r["request_index"]) == pa.Table.from_pylist(expected, schema=REQUESTS).to_pylist()
    )
    assert segments(tmp_path) == []


class Failing(WordRule):
    def count_completion(self, text: str) -> int:
        if text == "boom":
            raise ValueError("the tokenizer failed")
        return super().count_completion(text)


def test_an_error_in_the_writer_thread_is_raised_by_flush_and_the_writer_goes_on(tmp_path: Path) -> None:
    writer = RequestWriter(tmp_path, Failing())
    first, second = rows(2)
    first["completion_text"], second["completion_text"] = "boom", "fine"
    first["completion_tokens_client"] = second["completion_tokens_client"] = None
    writer.add(first)
    with pytest.raises(ValueError, match="the tokenizer failed"):
        writer.flush()
    assert segments(tmp_path)  # the row stays in the journal, for recovery
    writer.add(second)
    writer.close()
    (part,) = tmp_path.glob("part-*.parquet")
    assert pq.read_table(part).to_pylist()[0]["request_index"] == second["request_index"]


def test_a_writer_without_rows_leaves_one_empty_part(tmp_path: Path) -> None:
    writer = RequestWriter(tmp_path, WordRule())
    writer.close()
    (part,) = tmp_path.glob("part-*.parquet")
    table = pq.read_table(part)
    assert table.num_rows == 0 and table.schema.equals(REQUESTS)


def test_a_lone_surrogate_is_journaled_as_a_question_mark(tmp_path: Path) -> None:
    """A server's broken escape (\\ud800) decodes to a lone surrogate, which UTF-8 cannot carry."""
    journal = Journal(tmp_path)
    (row,) = rows(1)
    row["completion_text"] = "a\ud800b"
    journal.append(row)
    segment = journal.rotate()
    assert segment is not None
    assert read_table(segment).to_pylist()[0]["completion_text"] == "a?b"
    assert next(read_segment(segment))["completion_text"] == "a?b"
