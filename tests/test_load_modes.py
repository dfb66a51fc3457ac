"""Load modes: open-loop arrival schedules, the open-loop and wave schedulers, trace replay, and
the whole path (config -> collector -> marts -> report) against the mock endpoint."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fmb.collector import event_loop
from fmb.collector.arrivals import level_seed, open_loop, read_trace
from fmb.collector.mock.process import mock_server
from fmb.collector.runner import Due, nearest_prompts, waves
from fmb.collector.runner import open_loop as run_open_loop
from fmb.collector.targets.base import EndpointError, Request, with_output_limit
from fmb.config.schema import Experiment, Load
from fmb.errors import CollectError
from fmb.warehouse.build import warehouse_path
from tests.rawdata import query
from tests.test_collect import make_config, run_cli


def test_constant_arrivals_are_evenly_spaced() -> None:
    schedule = open_loop("constant", 4.0, seed=1, requests=10)
    assert schedule.warmup == 0 and schedule.requests == 10
    assert [round(t, 9) for t in schedule.offsets] == [round(0.25 * k, 9) for k in range(1, 11)]


@pytest.mark.parametrize(("mode", "burstiness", "cv"), [("poisson", 1.0, 1.0), ("gamma", 0.25, 2.0), ("gamma", 4, 0.5)])
def test_random_arrivals_have_the_rate_and_burstiness_asked_for(mode: str, burstiness: float, cv: float) -> None:
    schedule = open_loop(mode, 50.0, seed=7, burstiness=burstiness, requests=20_000)
    gaps = [b - a for a, b in zip((0.0, *schedule.offsets), schedule.offsets, strict=False)]
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(1 / 50, rel=0.05)
    assert statistics.pstdev(gaps) / mean == pytest.approx(cv, rel=0.08)


def test_the_same_seed_gives_the_same_times_and_levels_get_their_own() -> None:
    a = open_loop("poisson", 5, seed=level_seed(0, "exp", "p.jsonl", 5), requests=50)
    b = open_loop("poisson", 5, seed=level_seed(0, "exp", "p.jsonl", 5), requests=50)
    c = open_loop("poisson", 5, seed=level_seed(0, "exp", "q.jsonl", 5), requests=50)
    assert a == b
    assert a.offsets != c.offsets


@settings(max_examples=60, deadline=None)
@given(
    mode=st.sampled_from(["constant", "poisson", "gamma"]),
    rate=st.floats(0.5, 200),
    ramp=st.floats(0, 5),
    requests=st.integers(1, 300),
    seed=st.integers(0, 2**32),
)
def test_a_ramp_delays_the_same_arrivals_and_its_own_are_warm_ups(
    mode: str, rate: float, ramp: float, requests: int, seed: int
) -> None:
    plain = open_loop(mode, rate, seed=seed, burstiness=0.5, requests=requests)
    ramped = open_loop(mode, rate, seed=seed, burstiness=0.5, requests=requests, ramp_up_s=ramp)
    assert ramped.requests == requests
    assert all(t < ramp for t in ramped.offsets[: ramped.warmup])
    assert all(t >= ramp for t in ramped.offsets[ramped.warmup :])
    assert list(ramped.offsets) == sorted(ramped.offsets)
    # Time-rescaling: the full-rate arrival at t (t >= ramp / 2) is due at t + ramp / 2.
    shifted = [t + ramp / 2 for t in plain.offsets if t >= ramp / 2][: requests - 0]
    measured = ramped.offsets[ramped.warmup :]
    n = min(len(shifted), len(measured))
    assert measured[:n] == pytest.approx(shifted[:n], abs=1e-9)


def test_a_duration_bounds_the_level() -> None:
    schedule = open_loop("poisson", 20, seed=3, duration_s=5, ramp_up_s=1)
    assert all(1 <= t < 6 for t in schedule.offsets[schedule.warmup :])
    assert schedule.requests == pytest.approx(100, rel=0.3)


def test_config_check_counts_each_load_levels_requests(tmp_path: Path, cli_runner) -> None:
    extra = """
    - name: open
      api: openai-chat
      endpoint_url: http://127.0.0.1:9/v1
      instance_type: local.cpu
      inference_spec: {parameter_set: chat}
      payload_files: [payload_en_40-60.jsonl]
      concurrency_levels: [1]
      load: {mode: constant, rates: [2, 5], duration_s: 3}
    """
    config = make_config(tmp_path, "http://127.0.0.1:9", concurrency=(1, 2), rounds=3, extra=extra)
    results = tmp_path / "results"
    assert run_cli(cli_runner, "prepare", str(config), "--results", str(results)).exit_code == 0
    checked = run_cli(cli_runner, "config", "check", str(config), "--results", str(results))
    assert checked.exit_code == 0, checked.output
    # A constant rate for 3 s, one gap before the first: 0.5 .. 2.5 s and 0.2 .. 2.8 s, whatever the
    # concurrency levels say; plus the closed-loop experiment's 3 rounds at c = 1 and 2.
    assert "measured requests per level: open@2rps: 5, open@5rps: 14" in checked.output
    assert "requests planned for the prepared payload files: 28" in checked.output


def test_the_config_refuses_incomplete_or_contradictory_load() -> None:
    with pytest.raises(ValidationError, match=r"needs load\.rates"):
        Load(mode="poisson")
    with pytest.raises(ValidationError, match=r"needs load\.trace_file"):
        Load(mode="trace")
    with pytest.raises(ValidationError, match="not both"):
        Load(mode="constant", rates=[1], requests=5, duration_s=3)
    with pytest.raises(ValidationError, match="more than once"):
        Load(mode="constant", rates=[1, 2, 1.0])
    with pytest.raises(ValidationError, match="open-loop modes"):
        Load(mode="waves", rates=[1])
    with pytest.raises(ValidationError, match="ramp_up_s"):
        Experiment(
            name="e", payload_files=["p.jsonl"], concurrency_levels=[1], warmup_requests=3,
            load={"mode": "poisson", "rates": [1]},
        )  # fmt: skip


def test_a_trace_is_read_sorted_and_from_its_first_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"timestamp": 12.5, "input_length": 7}\n\n{"timestamp": 10, "output_length": 9}\n{"timestamp": 11, "x": 1}\n'
    )
    assert [(t.offset_s, t.input_length, t.output_length) for t in read_trace(path)] == [
        (0.0, None, 9),
        (1.0, None, None),
        (2.5, 7, None),
    ]
    path.write_text('{"timestamp": 1, "output_length": 0}\n')
    with pytest.raises(CollectError, match="line 1: 'output_length' must be a whole number of tokens, at least 1"):
        read_trace(path)
    path.write_text('{"timestamp": "soon"}\n')
    with pytest.raises(CollectError, match="line 1 has no number under 'timestamp'"):
        read_trace(path)
    with pytest.raises(CollectError, match="cannot read the trace file"):
        read_trace(tmp_path / "missing.jsonl")


def test_a_traces_output_length_is_set_wherever_the_api_keeps_its_maximum_tokens() -> None:
    parameters = {"max_new_tokens": 100, "temperature": 0.1}
    tgi = {"inputs": "hi", "parameters": parameters}
    limited = with_output_limit(tgi, Request("p", "hi", {}, max_output_tokens=7))
    assert limited == {"inputs": "hi", "parameters": {"max_new_tokens": 7, "temperature": 0.1}}
    assert parameters["max_new_tokens"] == 100  # the experiment's own parameters are not touched
    chat = {"messages": [], "max_tokens": 64, "stream": True}
    assert with_output_limit(chat, Request("p", "hi", {}, max_output_tokens=5))["max_tokens"] == 5
    assert with_output_limit(chat, Request("p", "hi", {})) is chat  # no output length: sent as configured
    with pytest.raises(EndpointError, match="no maximum-tokens parameter") as failed:
        with_output_limit(
            {"inputs": "hi", "parameters": {"temperature": 0}}, Request("p", "hi", {}, max_output_tokens=5)
        )
    assert failed.value.error_type == "output_length_not_applied"


def test_trace_requests_send_the_prompt_nearest_their_input_length() -> None:
    prompts = [Request(str(n), "w " * n, {}) for n in (10, 50, 30)]
    picks = nearest_prompts(prompts, [29, 41, None, None, 1000, 40], lambda r: len(r.prompt.split()))
    assert [p.prompt_id for p in picks] == ["30", "50", "30", "10", "50", "50"]  # 40: a tie, the earlier in the file


def test_open_loop_sends_on_time_and_the_cap_makes_requests_late() -> None:
    sent: dict[int, tuple[int, Due, int]] = {}
    in_flight = 0
    most = 0

    async def job(index: int, slot: int, due: Due) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        sent[index] = (time.perf_counter_ns(), due, slot)
        await asyncio.sleep(0.2)
        in_flight -= 1

    # Four due at once with at most two in flight: two wait for the first two to end.
    asyncio.run(run_open_loop([(0, 0.0), (1, 0.0), (2, 0.0), (3, 0.0), (4, 0.5)], 2, job))
    assert most == 2
    late = {i: (at - due.perf_ns) / 1e6 for i, (at, due, _) in sent.items()}
    assert late[2] >= 190 and late[3] >= 190  # waited for a slot: that is lateness, not latency
    assert late[0] < 100 and late[4] < 100
    assert sent[4][1].perf_ns - sent[0][1].perf_ns == pytest.approx(0.5e9, abs=1e6)
    assert {sent[i][2] for i in range(4)} == {0, 1}  # the worker column is the in-flight slot


def test_no_request_is_sent_before_it_is_due_on_the_collectors_event_loop() -> None:
    """uvloop's timers fire up to a millisecond early; a request must still never start before its time."""
    early: list[float] = []

    async def job(index: int, slot: int, due: Due) -> None:
        early.append((due.perf_ns - time.perf_counter_ns()) / 1e6)

    offsets = [(i, i * 0.0037) for i in range(150)]  # 3.7 ms apart: never on a whole millisecond
    event_loop.run(run_open_loop(offsets, None, job))
    assert len(early) == 150 and max(early) <= 0, f"sent up to {max(early):.3f} ms early"


def test_waves_start_only_when_the_last_wave_has_ended() -> None:
    events: list[tuple[str, int]] = []

    async def job(index: int, slot: int) -> None:
        events.append(("start", index))
        await asyncio.sleep(0.01 * (index % 3 + 1))
        events.append(("end", index))

    asyncio.run(waves(3, list(range(2, 11)), job, first=2))
    for wave in ([2, 3, 4], [5, 6, 7], [8, 9, 10]):
        starts = [events.index(("start", i)) for i in wave]
        ends = [events.index(("end", i)) for i in wave]
        later = [n for n, (kind, i) in enumerate(events) if kind == "start" and i > wave[-1]]
        assert all(e < min(later) for e in ends) if later else True
        assert max(starts) < min(ends)


@pytest.mark.slow
def test_open_loop_waves_and_trace_end_to_end(tmp_path: Path, cli_runner) -> None:
    (tmp_path / "trace.jsonl").write_text(
        "".join(
            f'{{"timestamp": {100 + 0.15 * k:.2f}, "input_length": {40 + k}, "output_length": {3 + k}}}\n'
            for k in range(12)
        )
    )
    extra = """
    - name: open
      api: openai-chat
      endpoint_url: {url}/v1
      instance_type: local.cpu
      stream: true
      inference_spec: {{parameter_set: chat}}
      payload_files: [payload_en_40-60.jsonl]
      concurrency_levels: [4]
      load: {{mode: poisson, rates: [10, 25], requests: 60, ramp_up_s: 0.4, max_in_flight: 32, seed: 5,
              lateness_threshold_ms: 250}}
    - name: overloaded
      api: openai-chat
      endpoint_url: {url}/v1
      instance_type: local.cpu
      stream: true
      inference_spec: {{parameter_set: chat}}
      payload_files: [payload_en_40-60.jsonl]
      concurrency_levels: [1]
      load: {{mode: constant, rates: [100], requests: 20, max_in_flight: 1}}
    - name: replay
      api: openai-chat
      endpoint_url: {url}/v1
      instance_type: local.cpu
      stream: true
      inference_spec: {{parameter_set: chat}}
      payload_files: [payload_en_40-60.jsonl]
      concurrency_levels: [1]
      load: {{mode: trace, trace_file: trace.jsonl, trace_speedups: [1, 3]}}
    """
    with mock_server(ttft_ms=20, itl_ms=2, output_tokens=16) as url:
        config = make_config(tmp_path, url, concurrency=(4,), rounds=3, extra=extra.format(url=url))
        config.write_text(config.read_text().replace("- name: mock-endpoint", "- name: waves") + "\n")
        text = config.read_text().replace(
            "  concurrency_levels: [4]\n",
            "  concurrency_levels: [4]\n  load: {mode: waves}\n  slo: {ttft_ms: 21.5, e2e_latency_ms: 60}\n",
            1,
        )
        config.write_text(text)
        results = tmp_path / "results"
        ran = run_cli(cli_runner, "run", str(config), "--results", str(results))
        assert ran.exit_code == 0, ran.output
    wh = warehouse_path(results)
    cells = {c["experiment"]: c for c in query(wh, "select * from cells")}
    assert set(cells) == {
        "waves",
        "open@10rps",
        "open@25rps",
        "overloaded@100rps",
        "replay@trace-x1",
        "replay@trace-x3",
    }

    for name, rate in (("open@10rps", 10), ("open@25rps", 25)):
        c = cells[name]
        assert (c["config_experiment"], c["load_mode"], c["request_rate_per_s"]) == ("open", "poisson", rate)
        assert c["count_requests"] == c["count_planned_requests"] == 60 and c["concurrency"] == 32
        assert c["send_lateness_p50_ms"] < c["lateness_threshold_ms"] and not c["is_behind_schedule"]
        assert c["e2e_latency_from_schedule_p99_ms"] >= c["e2e_latency_p99_ms"]
        # The server saw the rate asked for: arrivals of the measured requests, first to last.
        (span,) = query(
            wh,
            "select count(*) / date_diff('microsecond', min(scheduled_at), max(scheduled_at)) * 1e6 as r"
            " from requests where experiment = ?",
            [name],
        )
        assert span["r"] == pytest.approx(rate, rel=0.35)
    warmups = query(
        wh,
        "select count(*) as n from stg_raw__requests where experiment = 'open@25rps' and is_warmup",
    )[0]["n"]
    assert warmups >= 1  # the ramp's requests (0.4 s at half of 25/s on average) are warm-ups

    over = cells["overloaded@100rps"]
    assert over["is_behind_schedule"] and over["send_lateness_p99_ms"] > 100
    assert over["e2e_latency_from_schedule_p99_ms"] > over["e2e_latency_p99_ms"] + 100

    # Trace: sent at the trace's offsets, sped up.
    for name, speed in (("replay@trace-x1", 1), ("replay@trace-x3", 3)):
        rows = query(
            wh,
            "select request_index, date_diff('microsecond', min(scheduled_at) over (), scheduled_at) / 1e6 as due_s,"
            " send_lateness_ms, prompt_id, completion_tokens from requests where experiment = ? order by request_index",
            [name],
        )
        assert [r["request_index"] for r in rows] == list(range(12))
        # Each request generated the trace's output length (the mock stops at max_tokens, below its 16).
        assert [r["completion_tokens"] for r in rows] == [3 + k for k in range(12)]
        assert [r["due_s"] for r in rows] == pytest.approx([0.15 * k / speed for k in range(12)], abs=2e-3)
        assert cells[name]["trace_speedup"] == speed
        assert cells[name]["request_rate_per_s"] == pytest.approx(speed / 0.15, rel=1e-6)

    # Waves: no request of a wave starts before every request of the one before has ended.
    rows = query(wh, "select request_index, started_at, ended_at from requests where experiment = 'waves'")
    by_wave: dict[int, list[dict]] = {}
    for r in rows:
        by_wave.setdefault(r["request_index"] // 4, []).append(r)
    assert len(by_wave) == math.ceil(len(rows) / 4) and cells["waves"]["load_mode"] == "waves"
    for w in sorted(by_wave)[1:]:
        assert min(r["started_at"] for r in by_wave[w]) >= max(r["ended_at"] for r in by_wave[w - 1])

    # Goodput: the requests within the SLO, counted here from the request rows.
    waves_rows = query(
        wh, "select status, ttft_ms, e2e_latency_ms, completion_tokens from requests where experiment = 'waves'"
    )
    within = [r for r in waves_rows if r["status"] == "ok" and r["ttft_ms"] <= 21.5 and r["e2e_latency_ms"] <= 60]
    w = cells["waves"]
    assert 0 < len(within) < len(waves_rows)  # the mock's 20 ms TTFT: some are within 21.5 ms, some not
    assert w["count_requests_within_slo"] == len(within)
    assert w["slo_attainment"] == pytest.approx(len(within) / len(waves_rows))
    assert w["goodput_requests_per_s"] == pytest.approx(len(within) / w["window_s"])
    assert w["goodput_output_tokens_per_s"] == pytest.approx(
        sum(r["completion_tokens"] for r in within) / w["window_s"]
    )
    assert cells["open@10rps"]["count_requests_within_slo"] is None  # no SLO, no goodput

    curve = query(wh, "select * from load_curves where config_experiment = 'open' order by level_rank")
    assert [(r["offered_load"], r["load_unit"], r["count_levels"]) for r in curve] == [
        (10, "requests_per_s", 2),
        (25, "requests_per_s", 2),
    ]
    assert curve[1]["throughput_gain"] == pytest.approx(curve[1]["requests_per_s"] / curve[0]["requests_per_s"] - 1)
    assert sum(r["is_knee"] for r in curve) <= 1

    report = (results / "reports" / "mock-bench" / "report.md").read_text()
    assert "## Goodput: requests within the SLO" in report
    assert "## Load curves and their knees" in report and (results / "reports" / "mock-bench" / "knees.png").is_file()
    assert "## Load levels" in report and "overloaded@100rps (**behind schedule**)" in report
    assert "4 _(waves)_" in report
    assert (results / "reports" / "mock-bench" / "load_levels.png").is_file()


def test_a_level_meter_and_the_sweep_rule() -> None:
    from datetime import UTC, datetime, timedelta

    from fmb.collector.sweep import LevelMeter, Sweep
    from fmb.config.schema import Slo

    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def row(i: int, status: str = "ok", ttft: float | None = 10.0, warmup: bool = False) -> dict:
        return {
            "is_warmup": warmup, "status": status, "started_at": t0 + timedelta(seconds=i),
            "ended_at": t0 + timedelta(seconds=i + 1), "ttft_ms": ttft, "ttlt_ms": 50.0, "e2e_latency_ms": 60.0,
            "completion_tokens_server": 5, "send_lateness_ms": None,
        }  # fmt: skip

    meter = LevelMeter(Slo(ttft_ms=20, tpot_ms=5))
    for r in [row(0), row(1, ttft=30.0), row(2, status="error"), row(3, warmup=True)]:
        meter.add(r)
    assert (meter.measured, meter.successes, meter.within_slo) == (3, 2, 0)  # tpot (50-10)/4 = 10 > 5
    assert meter.requests_per_s == pytest.approx(2 / 3)
    assert meter.slo_attainment == 0

    # Without the server's count the client's tokenizer counts the text: 9 words, 8 gaps of 40 / 8 = 5 ms.
    class Words:
        def count_completion(self, text: str) -> int:
            return len(text.split())

    counted = LevelMeter(Slo(tpot_ms=5), counter=Words())
    counted.add(row(0) | {"completion_tokens_server": None, "completion_text": "a " * 9})
    assert counted.within_slo == 1
    counted.add(row(1) | {"completion_tokens_server": None, "completion_text": "a " * 5})  # 4 gaps of 10 ms
    assert (counted.measured, counted.within_slo) == (2, 1)

    load = Load(mode="closed", stop_past_knee=True)
    sweep = Sweep()
    flat = LevelMeter(Slo())
    for i in range(4):
        flat.add(row(i))
    assert sweep.observe(("c", "p"), flat, load) is None  # the first level never stops a curve
    assert sweep.observe(("c", "p"), flat, load) == "throughput_flat"  # the same throughput again
    assert sweep.stopped == {("c", "p"): "throughput_flat"}
    assert Sweep().observe(("c", "p"), meter, load) == "slo_broken"


@pytest.mark.slow
def test_a_sweep_stops_past_the_knee_and_the_run_is_complete(tmp_path: Path, cli_runner) -> None:
    # The server serves two requests at once: from concurrency 2 up, throughput stops growing.
    with mock_server(ttft_ms=30, itl_ms=2, output_tokens=8, max_running=2) as url:
        config = make_config(tmp_path, url, concurrency=(16, 1, 4, 2, 8), rounds=6)
        config.write_text(
            config.read_text().replace(
                "  concurrency_levels: [16, 1, 4, 2, 8]\n",
                "  concurrency_levels: [16, 1, 4, 2, 8]\n  load: {mode: closed, stop_past_knee: true}\n",
            )
        )
        results = tmp_path / "results"
        ran = run_cli(cli_runner, "run", str(config), "--results", str(results))
        assert ran.exit_code == 0, ran.output
    assert "payload_en_40-60.jsonl | c=8: skipped: a lower level stopped the sweep (throughput_flat)" in ran.output
    wh = warehouse_path(results)
    planned = query(wh, "select concurrency, skip_reason from stg_raw__cells order by concurrency")
    assert planned == [
        {"concurrency": 1, "skip_reason": None},
        {"concurrency": 2, "skip_reason": None},
        {"concurrency": 4, "skip_reason": None},
        {"concurrency": 8, "skip_reason": "throughput_flat"},
        {"concurrency": 16, "skip_reason": "throughput_flat"},
    ]
    (run,) = query(wh, "select run_status, count_missing_requests, count_cut_short_cells from runs")
    assert run == {"run_status": "completed", "count_missing_requests": 0, "count_cut_short_cells": 0}
    curve = query(wh, "select concurrency, is_knee, stop_reason from load_curves order by level_rank")
    assert curve == [
        {"concurrency": 1, "is_knee": False, "stop_reason": None},
        {"concurrency": 2, "is_knee": True, "stop_reason": None},
        {"concurrency": 4, "is_knee": False, "stop_reason": "throughput_flat"},
    ]
    report = (results / "reports" / "mock-bench" / "report.md").read_text()
    assert "| c=2 |" in report and "c=4: throughput grew" in report
