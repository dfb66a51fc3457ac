"""The mock's ``/metrics`` page: its real state in Prometheus text, under vLLM's metric names.

Every value is read from the :class:`~fmb.collector.mock.behaviour.Behaviour` when the page
is asked for, and every family has the label ``model_name`` (the mock's model name, ``fmb-mock`` by default):

=================================  =======  ==================================================================
metric                             type     what
=================================  =======  ==================================================================
``vllm:num_requests_running``      gauge    requests being served (holding one of the ``max_running`` slots)
``vllm:num_requests_waiting``      gauge    requests queued for a slot (only with ``max_running``)
``vllm:kv_cache_usage_perc``       gauge    share of the ``max_running`` slots in use, 0 to 1: the mock's KV
                                            cache is taken to hold exactly ``max_running`` sequences, one per
                                            slot (absent without ``max_running``: then nothing bounds it)
``vllm:prompt_tokens_total``       counter  prompt tokens of the requests taken (the usage's prompt_tokens
                                            where the API reports one, else the prompt's words)
``vllm:generation_tokens_total``   counter  tokens generated, counted as each chunk is released
``vllm:request_success_total``     counter  requests whose generation released every token it was to have
=================================  =======  ==================================================================

Counters count since the server started. Every POST request (a generation in any API the
mock speaks) goes through :meth:`Behaviour.admitted`, so the gauges cover every API.

The page is written by ``prometheus_client`` (a registry whose collector reads the
behaviour, and ``generate_latest``). The container-impersonating images of the tests have
only Python and aiohttp; there, without ``prometheus_client``, the same families are written
in the same text format by :func:`plain_text`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:  # older aiohttp (Debian's, in the test images) lacks these names at run time
    from aiohttp.typedefs import Handler, Middleware

from fmb.collector.mock.behaviour import Behaviour

LABEL = "model_name"
# Prometheus text format 0.0.4, what prometheus_client's generate_latest writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def families(behaviour: Behaviour) -> list[tuple[str, str, str, float]]:
    """(name, type, help, value) of every family, as the behaviour stands now."""
    b = behaviour
    found: list[tuple[str, str, str, float]] = [
        ("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", b.running),
        ("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", b.waiting),
    ]
    if b.s.max_running > 0:
        help_text = "KV-cache usage. 1 means 100 percent usage (the mock: running / max_running)."
        found.append(("vllm:kv_cache_usage_perc", "gauge", help_text, b.running / b.s.max_running))
    found += [
        ("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", b.prompt_tokens_total),
        (
            "vllm:generation_tokens_total",
            "counter",
            "Number of generation tokens processed.",
            b.generation_tokens_total,
        ),
        ("vllm:request_success_total", "counter", "Count of successfully processed requests.", b.success_total),
    ]
    return found


def plain_text(behaviour: Behaviour) -> bytes:
    """The page in Prometheus text format without prometheus_client (see the module's docstring)."""
    model = behaviour.s.model.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    lines: list[str] = []
    for name, kind, help_text, value in families(behaviour):
        lines += [
            f"# HELP {name} {help_text}",
            f"# TYPE {name} {kind}",
            f'{name}{{{LABEL}="{model}"}} {float(value)!r}',
        ]
    return ("\n".join(lines) + "\n").encode()


def _registry(behaviour: Behaviour) -> Any:
    """A prometheus_client registry whose one collector reads ``behaviour`` at every scrape."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector

    class BehaviourCollector(Collector):
        def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
            for name, kind, help_text, value in families(behaviour):
                family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                family = family_type(name, help_text, labels=[LABEL])
                family.add_metric([behaviour.s.model], value)
                yield family

    registry = CollectorRegistry(auto_describe=False)
    registry.register(BehaviourCollector())
    return registry


def routes(behaviour: Behaviour) -> list[web.RouteDef]:
    try:
        from prometheus_client import generate_latest

        registry = _registry(behaviour)

        def page() -> bytes:
            return bytes(generate_latest(registry))
    except ImportError:  # the test images: Python and aiohttp only

        def page() -> bytes:
            return plain_text(behaviour)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=page(), headers={"Content-Type": CONTENT_TYPE})

    return [web.get("/metrics", metrics)]


def queue(behaviour: Behaviour) -> Middleware:
    """A middleware that serves every POST request (a generation) within one of the behaviour's slots."""

    @web.middleware
    async def admit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST":
            return await handler(request)
        async with behaviour.admitted():
            return await handler(request)

    return admit
