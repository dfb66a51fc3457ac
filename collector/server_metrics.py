"""Server metrics: the Prometheus metrics of a model server, scraped while its experiment runs.

While `fmb collect` sends an experiment's requests, a thread (never the event loop that
sends them) GETs the server's metrics page every ``telemetry.server_interval_s`` seconds
(default 1), parses it with ``prometheus_client``'s own text parser and writes one row per
sample into ``raw/server_metrics``: the family, its type, the sample's name, its labels as
JSON with sorted keys, and its value. Counters stay cumulative (the warehouse computes
rates); histograms keep their ``_bucket``/``_sum``/``_count`` samples. A last scrape when
the experiment's cells are done records the counters' final values.

Which URL (see :func:`metrics_urls`): the experiment's ``metrics_url`` when set (``none``
turns scraping off); else ``/metrics`` at the server's root for servers fmb deployed on
this host (``local``: llama.cpp's metrics endpoint, which fmb turns on; EC2 containers of
the types in :data:`PROMETHEUS_CONTAINER_TYPES`; Triton on its metrics port, the HTTP port
+ 2), and as a guess for brought OpenAI-compatible, TGI and llama.cpp servers. SageMaker,
Bedrock, EKS (Ray Serve), DJL and Ollama have no Prometheus page fmb can reach. With
several copies of the model each copy is scraped, its rows numbered in ``model_copy``.

A URL whose first scrape fails (refused, an HTTP error, not Prometheus text) is noted once
and not scraped again; for a guessed URL the note is quiet (kept, not printed). A later
failure is noted once and the URL is tried again at every tick. The experiment's headers
and ``api_key_env`` bearer token are sent with each scrape, as with its requests, and are
never printed; userinfo in a URL is masked wherever one is shown. Nothing here ever stops
the collection.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from fmb.collector.sample_parts import SampleParts
from fmb.collector.schemas import SERVER_METRICS
from fmb.redact import Redactor, header_secrets

if TYPE_CHECKING:
    from rich.console import Console

    from fmb.config import LoadedConfig, ResolvedExperiment
    from fmb.endpoints import Endpoint
    from fmb.paths import ResultsLayout

# EC2 container types whose server has a Prometheus /metrics page on its API port.
PROMETHEUS_CONTAINER_TYPES = ("vllm", "vllm_gpu", "sglang", "llama_server", "tgi")
# Triton serves its metrics on their own port; fmb's Triton containers put it at the HTTP port + 2.
TRITON_METRICS_PORT_OFFSET = 2
# Brought servers whose API has a /metrics page, most of the time (llama.cpp only with --metrics).
GUESSED_BACKENDS = ("openai-chat", "openai-completions", "tgi", "llama-cpp")
NO_METRICS_KINDS = ("sagemaker", "eks")
FLUSH_EVERY_S = 1.0
METRIC_TYPES = ("counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset", "unknown")

# A sample: (family, metric_type, metric, labels as JSON, value).
Sample = tuple[str, str, str, str, float]


class ScrapeError(Exception):
    """A scrape that gave no samples; its message says why."""


def labels_json(labels: dict[str, str]) -> str:
    """A sample's labels as the JSON object stored in ``labels``: sorted keys, no spaces ({} when none)."""
    return json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_samples(text: str) -> list[Sample]:
    """Every sample of a Prometheus text page, with the sample names the server wrote.

    ``prometheus_client``'s parser appends ``_total`` to the samples of a counter whose TYPE
    line names it without that suffix (the OpenMetrics convention); that suffix is taken
    off again, so that ``metric`` is the name on the page. Raises ValueError for a page
    that is not Prometheus text.
    """
    from prometheus_client.parser import text_string_to_metric_families

    samples: list[Sample] = []
    for family in text_string_to_metric_families(text):
        kind = family.type if family.type in METRIC_TYPES else "unknown"
        appended = kind == "counter" and f"# TYPE {family.name} " in text
        for sample in family.samples:
            name = sample.name
            if appended and name.endswith("_total"):
                name = name[: -len("_total")]
            samples.append((family.name, kind, name, labels_json(sample.labels), float(sample.value)))
    return samples


def _http_url(address: str | None) -> bool:
    return bool(address) and urlsplit(address or "").scheme in ("http", "https")


def _metrics_url(address: str, port_offset: int = 0) -> str:
    """``/metrics`` at the root of ``address`` (its userinfo kept), on its port + ``port_offset``."""
    parts = urlsplit(address)
    netloc = parts.netloc
    if port_offset:
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        port = parts.port or (443 if parts.scheme == "https" else 80)
        userinfo = netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{host}:{port + port_offset}" if userinfo else f"{host}:{port + port_offset}"
    return urlunsplit((parts.scheme, netloc, "/metrics", "", ""))


def _defaults(exp: ResolvedExperiment, endpoint: Endpoint | None) -> tuple[list[tuple[int | None, str]], bool]:
    """(URLs, whether they are a guess) when the experiment names no metrics_url."""
    kind = endpoint.kind if endpoint is not None else None
    if kind in NO_METRICS_KINDS:
        return [], False
    addresses = list(endpoint.copies) if endpoint is not None and endpoint.copies else []
    if not addresses:
        addresses = [endpoint.address if endpoint is not None and endpoint.address else exp.endpoint or ""]
    addresses = [a for a in addresses if _http_url(a)]
    ctype = (exp.spec.inference_spec.container_type or "").strip()
    ctype = "llama_server" if ctype == "llama.cpp" else ctype
    offset: int | None = None
    guessed = False
    if kind == "local":
        offset = 0
    elif kind == "ec2":
        if ctype in PROMETHEUS_CONTAINER_TYPES:
            offset = 0
        elif ctype == "triton":
            offset = TRITON_METRICS_PORT_OFFSET
    elif kind is None:  # brought: a guess, quietly dropped when the server has no such page
        guessed = True
        if exp.backend == "triton":
            offset = TRITON_METRICS_PORT_OFFSET
        elif exp.backend in GUESSED_BACKENDS or ctype in PROMETHEUS_CONTAINER_TYPES:
            offset = 0
    if offset is None:
        return [], False
    urls = [_metrics_url(a, offset) for a in addresses]
    if len(urls) == 1:
        return [(None, urls[0])], guessed
    return [(i + 1, url) for i, url in enumerate(urls)], guessed


def metrics_urls(exp: ResolvedExperiment, endpoint: Endpoint | None) -> list[tuple[int | None, str]]:
    """The URLs to scrape for ``exp``, each with its model copy (1, 2, ...; None when there is one copy).

    An explicit ``metrics_url`` wins (``none``: no URL); else the defaults in the module's docstring.
    """
    explicit = (exp.spec.metrics_url or "").strip()
    if explicit:
        return [] if explicit.lower() == "none" else [(None, explicit)]
    return _defaults(exp, endpoint)[0]


@dataclass
class _Source:
    copy: int | None
    url: str
    shown: str
    scraped: bool = False  # a scrape of it has given samples
    failed_noted: bool = False  # a failure after the first scrape was noted


class ServerScraper(AbstractContextManager["ServerScraper"]):
    """Scrapes ``urls`` in a thread from ``start`` (or ``with``) to ``stop`` into ``directory``'s part files."""

    def __init__(
        self,
        directory: Path,
        run_id: str,
        experiment: str,
        urls: Iterable[tuple[int | None, str]],
        interval_s: float = 1.0,
        *,
        headers: dict[str, str] | None = None,
        guessed: bool = False,
        note: Callable[[str], None] | None = None,
        redact: Redactor | None = None,
        timeout_s: float | None = None,
        rows_per_part: int = 20_000,
    ) -> None:
        self.directory = directory
        self.run_id = run_id
        self.experiment = experiment
        self.interval_s = interval_s
        self.timeout_s = timeout_s if timeout_s is not None else max(2.0, min(10.0, 2 * interval_s))
        self.guessed = guessed
        self.notes: list[str] = []
        self._on_note = note
        self._headers = dict(headers or {})
        base = redact or Redactor()
        self._redact = Redactor([*base.secrets, *header_secrets(self._headers)], base.words)
        self._sources = [_Source(copy, url, Redactor()(url) or url) for copy, url in urls]
        self._parts = SampleParts(directory, SERVER_METRICS, rows_per_part=rows_per_part, note=self.note)
        self._flushed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None

    @property
    def rows_written(self) -> int:
        return self._parts.rows_written

    def note(self, text: str, *, quiet: bool = False) -> None:
        text = self._redact(text) or ""
        self.notes.append(text)
        if self._on_note is not None and not quiet:
            try:
                self._on_note(text)
            except Exception:  # a note never stops anything
                pass

    def start(self) -> None:
        import httpx

        if not self._sources:
            return
        self._client = httpx.Client(
            headers=self._headers, timeout=self.timeout_s, follow_redirects=False, trust_env=False
        )
        self._flushed_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"fmb-server-metrics-{self.experiment}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Scrape a last time (the counters' final values), stop and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s * (len(self._sources) + 1) + 30)
            if self._thread.is_alive():
                self.note(f"experiment {self.experiment}: the scraper did not stop; its last samples are not written")
                return
            self._thread = None
        if self._client is not None:
            self._client.close()
            self._client = None
        self._parts.flush()

    def __enter__(self) -> ServerScraper:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            self._scrape_all()
            due = time.monotonic() + self.interval_s
            while self._sources and not self._stop.wait(max(0.0, due - time.monotonic())):
                self._scrape_all()
                if time.monotonic() - self._flushed_at >= FLUSH_EVERY_S * 0.99:
                    self._flushed_at = time.monotonic()
                    self._parts.flush()
                due += self.interval_s
                if due < time.monotonic():  # a slow scrape: skip the ticks missed
                    due = time.monotonic() + self.interval_s
            if self._sources:
                self._scrape_all()  # the counters as they stand when the cells are done
        except Exception as exc:  # never the collection's problem
            self.note(f"experiment {self.experiment}: scraping stopped: {type(exc).__name__}: {exc}")

    def _scrape_all(self) -> None:
        for source in list(self._sources):
            try:
                at, samples = self._scrape(source)
            except Exception as exc:  # httpx's errors, a parse error, a page with no samples
                self._failed(source, exc)
                continue
            source.scraped = True
            self._parts.add(
                {
                    "run_id": self.run_id,
                    "experiment": self.experiment,
                    "model_copy": source.copy,
                    "scraped_at": at,
                    "family": family,
                    "metric_type": kind,
                    "metric": metric,
                    "labels": labels,
                    "value": value,
                }
                for family, kind, metric, labels, value in samples
            )

    def _scrape(self, source: _Source) -> tuple[datetime, list[Sample]]:
        response = self._client.get(source.url)
        at = datetime.now(UTC)
        if response.status_code != 200:
            raise ScrapeError(f"HTTP {response.status_code}")
        try:
            samples = parse_samples(response.text)
        except ValueError as exc:
            raise ScrapeError(f"not Prometheus text ({exc})") from None
        if not samples:
            raise ScrapeError("the page holds no Prometheus samples")
        return at, samples

    def _failed(self, source: _Source, exc: Exception) -> None:
        why = str(exc) if isinstance(exc, ScrapeError) else f"{type(exc).__name__}: {exc or 'no answer'}"
        why = why.replace(source.url, source.shown)
        which = f"experiment {self.experiment}" + (f", copy {source.copy}" if source.copy is not None else "")
        if not source.scraped and (self.guessed or isinstance(exc, ScrapeError)):
            # A definite answer (no such page, not Prometheus text), or a guessed page that is not
            # there: not scraped again.
            self._sources.remove(source)
            self.note(f"{which}: {source.shown} is not scraped ({why})", quiet=self.guessed)
        elif not source.failed_noted:
            source.failed_noted = True
            self.note(f"{which}: a scrape of {source.shown} failed ({why}); trying again every {self.interval_s:g} s")


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of a URL (the port made explicit), to tell whether two URLs are one server."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def server_scraper(
    loaded: LoadedConfig,
    layout: ResultsLayout,
    run_id: str,
    exp: ResolvedExperiment,
    endpoint: Endpoint | None,
    *,
    console: Console | None = None,
    quiet: bool = False,
) -> AbstractContextManager[object]:
    """Scraping of ``exp``'s server for the length of a `with` block, or nothing when there is no URL.

    The config's ``telemetry: {server_metrics: false}`` turns it off everywhere, an
    experiment's ``metrics_url: none`` for that experiment; ``server_interval_s`` sets the
    interval. Notes go to ``console`` unless ``quiet``.
    """
    from fmb.config.schema import Telemetry
    from fmb.errors import FmbError

    settings = loaded.config.telemetry or Telemetry()
    if not settings.server_metrics:
        return nullcontext()
    urls = metrics_urls(exp, endpoint)
    if not urls:
        return nullcontext()
    guessed = not (exp.spec.metrics_url or "").strip() and _defaults(exp, endpoint)[1]
    try:
        from fmb.collector.targets.http import auth_headers

        headers = auth_headers(exp)
    except FmbError:  # api_key_env names an unset variable: the requests fail on their own
        headers = {}
    # The endpoint's headers (its API key) go only to a page on the endpoint's own server.
    servers = {_origin(a) for a in (*(endpoint.copies if endpoint else ()), exp.endpoint or "") if a}
    if not all(_origin(url) in servers for _, url in urls):
        headers = {}

    def note(text: str) -> None:
        if not quiet:
            from rich import get_console

            (console or get_console()).print(f"server metrics: {text}", markup=False, highlight=False, soft_wrap=True)

    return ServerScraper(
        layout.server_metrics_dir(run_id),
        run_id,
        exp.name,
        urls,
        settings.server_interval_s,
        headers=headers,
        guessed=guessed,
        note=note,
        redact=loaded.redactor(),
    )
