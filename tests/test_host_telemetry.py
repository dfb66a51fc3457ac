"""Host telemetry: real psutil samples, NVML without a GPU, a neuron-monitor on PATH, kill -9, and
`fmb collect` + `fmb build` against a server fmb "deployed" on this host (the mock server)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import dedent

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from fmb.collector.host_telemetry import (
    METRICS,
    HostTelemetry,
    NvidiaProbe,
    Unavailable,
    host_telemetry,
    neuron_readings,
    sampled_here,
)
from fmb.collector.schemas import HOST_METRIC_SOURCES, HOST_METRICS
from fmb.config import load_config
from fmb.config.loader import ConfigError
from fmb.endpoints import Endpoint
from fmb.paths import ResultsLayout
from tests.conftest import MISTRAL_TOKENIZER, ROOT


def rows(directory: Path) -> list[dict]:
    parts = sorted(directory.glob("*.parquet"))
    return ds.dataset(parts, format="parquet", schema=HOST_METRICS).to_table().to_pylist() if parts else []


def cores() -> int:
    return os.cpu_count() or 1


def nvml_works() -> bool:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


# -- the host: psutil, for real ------------------------------------------------------------


def test_the_host_is_sampled_with_sane_values(tmp_path: Path) -> None:
    notes: list[str] = []
    with HostTelemetry(tmp_path / "hm", "run-1", 0.2, note=notes.append) as telemetry:
        time.sleep(1.5)
    found = rows(tmp_path / "hm")
    assert telemetry.rows_written == len(found) > 0
    host = [r for r in found if r["source"] == "host"]
    by_time: dict[datetime, dict[str, float]] = {}
    for row in host:
        assert (row["run_id"], row["device"], row["unit"]) == ("run-1", "host", METRICS[row["metric"]][1])
        assert row["sampled_at"].utcoffset() == timedelta(0)
        by_time.setdefault(row["sampled_at"], {})[row["metric"]] = row["value"]
    assert len(by_time) >= 4  # about 7 samples at 0.2 s in 1.5 s
    for sample in by_time.values():
        assert set(sample) == {"cpu_percent", "memory_used_bytes", "memory_available_bytes", "memory_total_bytes"}
        assert 0 <= sample["cpu_percent"] <= 100 * cores()
        assert sample["memory_total_bytes"] > sample["memory_used_bytes"] > 0
        assert 0 < sample["memory_available_bytes"] <= sample["memory_total_bytes"]
    times = sorted(by_time)
    assert all(0.1 < (b - a).total_seconds() < 1.0 for a, b in itertools.pairwise(times))
    assert [p.name for p in (tmp_path / "hm").iterdir()] == ["part-00000.parquet"]  # no temporary file left


def test_a_full_part_is_followed_by_a_new_one_without_duplicates(tmp_path: Path) -> None:
    with HostTelemetry(tmp_path / "hm", "run-1", 0.1, rows_per_part=8):
        time.sleep(2.5)
    parts = sorted((tmp_path / "hm").glob("part-*.parquet"))
    assert len(parts) >= 2
    assert all(pq.read_metadata(p).num_rows >= 8 for p in parts[:-1])
    found = rows(tmp_path / "hm")
    keys = [(r["sampled_at"], r["source"], r["device"], r["metric"]) for r in found]
    assert len(keys) == len(set(keys))


# -- NVIDIA: NVML without a GPU --------------------------------------------------------------


def test_nvml_without_a_gpu_is_a_note_and_no_rows(tmp_path: Path) -> None:
    if nvml_works():
        pytest.skip("this machine has an NVIDIA driver; see test_an_nvidia_gpu_is_sampled")
    import pynvml

    with pytest.raises(pynvml.NVMLError):  # the real library call fails here ...
        pynvml.nvmlInit()
    with pytest.raises(Unavailable, match=r"no NVIDIA GPU is sampled: NVML is not available here \(.+\)"):
        NvidiaProbe()
    notes: list[str] = []
    with HostTelemetry(tmp_path / "hm", "run-1", 0.2, note=notes.append):  # ... and sampling goes on
        time.sleep(0.7)
    (note,) = notes
    assert note.startswith("sampling host every 0.2 s; no NVIDIA GPU is sampled: NVML is not available here (")
    found = rows(tmp_path / "hm")
    assert found and {r["source"] for r in found} == {"host"}


def test_an_nvidia_gpu_is_sampled(tmp_path: Path) -> None:
    if not nvml_works():
        pytest.skip("no NVIDIA GPU and driver on this machine")
    with HostTelemetry(tmp_path / "hm", "run-1", 0.2):
        time.sleep(1.2)
    gpu = [r for r in rows(tmp_path / "hm") if r["source"] == "nvidia"]
    latest = {(r["device"], r["metric"]): r["value"] for r in gpu}
    assert {"gpu_utilization_percent", "gpu_memory_used_bytes", "gpu_memory_total_bytes"} <= {m for _, m in latest}
    for (device, metric), value in latest.items():
        assert device.isdigit()
        if metric == "gpu_utilization_percent":
            assert 0 <= value <= 100
        if metric == "gpu_memory_used_bytes":
            assert 0 <= value <= latest[(device, "gpu_memory_total_bytes")]


# -- Neuron: a neuron-monitor on PATH --------------------------------------------------------


# Two Neuron runtimes, each listing all four NeuronCores (zeros for the cores it does not
# use), in the layout neuron-monitor's user guide documents.
def _runtime(pid: int, busy: dict[str, float], memory: dict[str, int]) -> dict:
    return {
        "pid": pid,
        "neuron_runtime_tag": str(pid),
        "error": "",
        "report": {
            "neuroncore_counters": {
                "period": 1.0,
                "neuroncores_in_use": {c: {"neuroncore_utilization": busy.get(c, 0.0)} for c in "0123"},
                "error": "",
            },
            "memory_used": {
                "period": 1.0,
                "neuron_runtime_used_bytes": {
                    "host": 1000,
                    "neuron_device": sum(memory.values()),
                    "usage_breakdown": {
                        "host": {"application_memory": 1000},
                        "neuroncore_memory_usage": {
                            c: {
                                "constants": memory.get(c, 0),
                                "model_code": 0,
                                "model_shared_scratchpad": 0,
                                "runtime_memory": 0,
                                "tensors": 100 if c in memory else 0,
                            }
                            for c in "0123"
                        },
                    },
                },
                "error": "",
            },
        },
    }


REPORT = {
    "neuron_runtime_data": [
        _runtime(101, {"0": 40.5, "1": 12.0}, {"0": 2_000_000, "1": 1_000_000}),
        _runtime(102, {"2": 99.0}, {"2": 3_000_000}),
    ],
    "system_data": {"vcpu_usage": {"average_usage": {"user": 1.0, "system": 0.5, "idle": 98.5}}},
    "instance_info": {"instance_type": "inf2.xlarge"},
    "neuron_hardware_info": {"neuron_device_count": 1, "neuroncore_per_device_count": 4},
}
EXPECTED_NEURON = {
    ("0", "neuroncore_utilization_percent"): 40.5,
    ("1", "neuroncore_utilization_percent"): 12.0,
    ("2", "neuroncore_utilization_percent"): 99.0,
    ("3", "neuroncore_utilization_percent"): 0.0,
    ("0", "neuroncore_memory_used_bytes"): 2_000_100.0,
    ("1", "neuroncore_memory_used_bytes"): 1_000_100.0,
    ("2", "neuroncore_memory_used_bytes"): 3_000_100.0,
    ("3", "neuroncore_memory_used_bytes"): 0.0,
}


def test_a_neuron_monitor_report_gives_each_core_summed_over_runtimes() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    readings = neuron_readings(REPORT, now)
    assert {(device, metric): value for _, device, metric, value in readings} == EXPECTED_NEURON
    assert neuron_readings({"neuron_runtime_data": []}, now) == []
    assert neuron_readings({}, now) == []


def fake_neuron_monitor(bin_dir: Path, *, exit_status: int | None = None) -> Path:
    """A `neuron-monitor` on PATH: reads its -c config, keeps a copy, prints REPORT every period."""
    bin_dir.mkdir()
    script = bin_dir / "neuron-monitor"
    body = f"""\
        #!{sys.executable}
        import json, sys, time
        REPORT = {json.dumps(REPORT)!r}
        config = json.load(open(sys.argv[sys.argv.index("-c") + 1]))
        json.dump(config, open({str(bin_dir / "config-seen.json")!r}, "w"))
        if {exit_status!r} is not None:
            sys.exit({exit_status!r})
        period = float(config["period"].removesuffix("ms")) / 1000
        while True:
            print(REPORT, flush=True)
            time.sleep(period)
        """
    script.write_text(dedent(body), encoding="utf-8")
    script.chmod(0o755)
    return bin_dir


def test_neuroncores_are_sampled_from_neuron_monitor_on_path(tmp_path: Path, monkeypatch) -> None:
    bin_dir = fake_neuron_monitor(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    notes: list[str] = []
    with HostTelemetry(tmp_path / "hm", "run-1", 0.25, note=notes.append):
        time.sleep(1.6)
    seen = json.loads((bin_dir / "config-seen.json").read_text())
    assert seen["period"] == "250ms"
    assert {m["type"] for m in seen["neuron_runtimes"][0]["metrics"]} == {"neuroncore_counters", "memory_used"}
    neuron = [r for r in rows(tmp_path / "hm") if r["source"] == "neuron"]
    assert len({r["sampled_at"] for r in neuron}) >= 3  # one per report
    for row in neuron:
        assert row["value"] == EXPECTED_NEURON[(row["device"], row["metric"])]
        assert row["unit"] == METRICS[row["metric"]][1]
    assert notes[0].startswith("sampling host, neuron every 0.25 s")


def test_a_neuron_monitor_that_fails_is_a_note(tmp_path: Path, monkeypatch) -> None:
    bin_dir = fake_neuron_monitor(tmp_path / "bin", exit_status=3)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    notes: list[str] = []
    with HostTelemetry(tmp_path / "hm", "run-1", 0.2, note=notes.append):
        time.sleep(1.2)
    assert "neuron telemetry stopped: RuntimeError: neuron-monitor exited with status 3" in notes
    found = rows(tmp_path / "hm")
    assert {r["source"] for r in found} == {"host"}  # the host is still sampled


# -- durability --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_sampler_keeps_its_samples_up_to_the_last_second(tmp_path: Path) -> None:
    directory = tmp_path / "hm"
    code = dedent(
        f"""
        import sys, time
        from pathlib import Path
        from fmb.collector.host_telemetry import HostTelemetry
        HostTelemetry(Path({str(directory)!r}), "run-k", 0.1).start()
        print("sampling", flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "sampling"
        time.sleep(3.2)
        killed_at = datetime.now(UTC)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    found = rows(directory)  # every part is a complete Parquet file
    times = sorted({r["sampled_at"] for r in found})
    assert len(times) >= 15  # about 30 samples in 3.2 s
    assert killed_at - times[-1] < timedelta(seconds=1.5)  # flushed about once a second
    assert all(p.suffix == ".parquet" for p in directory.glob("part-*"))


# -- when to sample ---------------------------------------------------------------------------


def test_only_servers_fmb_deployed_on_this_host_are_sampled() -> None:
    endpoints = {
        "brought": Endpoint("http://x/v1"),
        "sm": Endpoint("my-endpoint", True, kind="sagemaker"),
        "llama": Endpoint("http://127.0.0.1:1/v1", True, kind="local"),
        "vllm": Endpoint("http://127.0.0.1:2/v1", True, kind="ec2"),
    }
    assert not sampled_here(endpoints, ["brought", "sm"])
    assert sampled_here(endpoints, ["brought", "llama"])
    assert sampled_here(endpoints, ["vllm"])
    assert not sampled_here(endpoints, ["llama-not-collected"])


def _config(tmp_path: Path, url: str, telemetry: str = "") -> Path:
    text = dedent(
        f"""
        general: {{name: telemetry-bench, model_name: mock}}
        s3_read_data: {{source_data_files: ["synthetic:exact-lengths"]}}
        datasets:
          tokenizer: {MISTRAL_TOKENIZER}
          prompt_template_keys: [input]
          min_iters_per_combination: 6
          max_iters_per_combination: 6
          synthetic: {{prompts_per_filter: 6}}
          filters:
          - {{language: en, min_length_in_tokens: 40, max_length_in_tokens: 60, payload_file: payload_en_40-60.jsonl}}
        inference_parameters:
          chat: {{max_tokens: 32, temperature: 0.1}}
        experiments:
        - name: mock-endpoint
          api: openai-chat
          endpoint_url: {url}/v1
          instance_type: local.cpu
          stream: true
          inference_spec: {{parameter_set: chat}}
          payload_files: [payload_en_40-60.jsonl]
          concurrency_levels: [1, 2]
        """
    )
    path = tmp_path / "config.yml"
    path.write_text(text + dedent(telemetry), encoding="utf-8")
    return path


def test_the_config_turns_telemetry_off_or_sets_its_interval(tmp_path: Path) -> None:
    layout = ResultsLayout(tmp_path / "results")
    local = {"mock-endpoint": Endpoint("http://127.0.0.1:1/v1", True, kind="local")}
    loaded = load_config(_config(tmp_path, "http://127.0.0.1:1"), results_dir=layout.root)
    default = host_telemetry(loaded, layout, "r1", local, ["mock-endpoint"])
    assert isinstance(default, HostTelemetry) and default.interval_s == 1.0
    assert default.directory == layout.root / "raw" / "host_metrics" / "run_id=r1"
    assert "telemetry" not in loaded.redacted()  # configs without the section keep their hash
    brought = host_telemetry(loaded, layout, "r1", {"mock-endpoint": Endpoint("http://x/v1")}, ["mock-endpoint"])
    assert not isinstance(brought, HostTelemetry)

    loaded = load_config(_config(tmp_path, "http://127.0.0.1:1", "telemetry: {host_interval_s: 0.5}\n"))
    made = host_telemetry(loaded, layout, "r1", local, ["mock-endpoint"])
    assert isinstance(made, HostTelemetry) and made.interval_s == 0.5
    loaded = load_config(_config(tmp_path, "http://127.0.0.1:1", "telemetry: {enabled: false}\n"))
    assert not isinstance(host_telemetry(loaded, layout, "r1", local, ["mock-endpoint"]), HostTelemetry)

    with pytest.raises(ConfigError, match=r"telemetry\.host_interval_s"):
        load_config(_config(tmp_path, "http://127.0.0.1:1", "telemetry: {host_interval_s: 0}\n"))


def test_sources_are_the_same_in_python_and_sql() -> None:
    staging = yaml.safe_load((ROOT / "dbt_project" / "models" / "staging" / "_staging.yml").read_text())
    (model,) = [m for m in staging["models"] if m["name"] == "stg_raw__host_metrics"]
    columns = {c["name"]: c for c in model["columns"]}

    def accepted(column: str) -> list[str]:
        (test,) = [t["accepted_values"] for t in columns[column]["data_tests"] if isinstance(t, dict)]
        return sorted(test["arguments"]["values"])

    assert accepted("source") == sorted(HOST_METRIC_SOURCES) == sorted({s for s, _ in METRICS.values()})
    assert accepted("unit") == sorted({u for _, u in METRICS.values()})


# -- end to end: fmb collect, then fmb build -----------------------------------------------------


@pytest.mark.slow
def test_collect_samples_a_local_server_and_build_joins_the_samples_to_cells(tmp_path: Path, cli_runner) -> None:
    from fmb.cli import cli
    from fmb.collector.collect import collect
    from fmb.collector.mock.process import mock_server
    from fmb.warehouse.build import build, warehouse_path
    from tests.rawdata import query

    results = tmp_path / "results"
    layout = ResultsLayout(results)
    with mock_server(ttft_ms=30, itl_ms=4, output_tokens=32) as url:
        config = _config(tmp_path, url, "telemetry: {host_interval_s: 0.1}\n")
        prepared = cli_runner.invoke(cli, ["prepare", str(config), "--results", str(results)])
        assert prepared.exit_code == 0, prepared.output
        loaded = load_config(config, results_dir=results)
        # A brought endpoint first: nothing sampled, and the warehouse builds without host_metrics.
        brought = collect(loaded, layout, {"mock-endpoint": Endpoint(f"{url}/v1")}, quiet=True)
        assert brought.status == "completed"
        assert not (results / "raw" / "host_metrics").exists()
        build(results)
        assert query(warehouse_path(results), "select count(*) as n from int_host_metrics_by_cell") == [{"n": 0}]
        # Then the same server as if fmb had deployed it on this host.
        local = collect(loaded, layout, {"mock-endpoint": Endpoint(f"{url}/v1", True, kind="local")}, quiet=True)
        assert local.status == "completed"
    assert rows(layout.host_metrics_dir(brought.run_id)) == []
    samples = rows(layout.host_metrics_dir(local.run_id))
    assert samples and {r["run_id"] for r in samples} == {local.run_id}
    build(results)

    staged = query(
        warehouse_path(results),
        "select run_id, count(*) as n from stg_raw__host_metrics group by run_id",
    )
    assert staged == [{"run_id": local.run_id, "n": len(samples)}]

    requests = ds.dataset(results / "raw" / "requests", format="parquet", partitioning="hive").to_table().to_pylist()
    measured = [r for r in requests if r["run_id"] == local.run_id and not r["is_warmup"]]
    by_cell = query(
        warehouse_path(results),
        "select * from int_host_metrics_by_cell where metric = 'cpu_percent' order by concurrency",
    )
    assert [c["concurrency"] for c in by_cell] == [1, 2]
    for cell in by_cell:
        requests_of_cell = [r for r in measured if r["concurrency"] == cell["concurrency"]]
        start = min(r["started_at"] for r in requests_of_cell)
        end = max(r["ended_at"] for r in requests_of_cell)
        inside = [s["value"] for s in samples if s["metric"] == "cpu_percent" and start <= s["sampled_at"] <= end]
        assert cell["run_id"] == local.run_id and cell["source"] == "host" and cell["device"] == "host"
        assert cell["count_samples"] == len(inside) > 0
        assert cell["max_value"] == max(inside)
        assert cell["mean_value"] == pytest.approx(sum(inside) / len(inside), abs=1e-6)
    memory = query(
        warehouse_path(results),
        "select distinct unit, max_value > 0 as positive from int_host_metrics_by_cell where metric like 'memory%'",
    )
    assert memory == [{"unit": "bytes", "positive": True}]
