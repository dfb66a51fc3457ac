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
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from fmb.collector.mock.behaviour import Behaviour

LABELS = ["model_name"]


class BehaviourCollector(Collector):
    """The mock's families, read from its behaviour at every scrape."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        b = self.behaviour
        model = [b.s.model]
        gauges: list[tuple[str, str, float | None]] = [
            ("vllm:num_requests_running", "Number of requests in model execution batches.", b.running),
            ("vllm:num_requests_waiting", "Number of requests waiting to be processed.", b.waiting),
            (
                "vllm:kv_cache_usage_perc",
                "KV-cache usage. 1 means 100 percent usage (the mock: running / max_running).",
                b.running / b.s.max_running if b.s.max_running > 0 else None,
            ),
        ]
        for name, help_text, value in gauges:
            if value is not None:
                gauge = GaugeMetricFamily(name, help_text, labels=LABELS)
                gauge.add_metric(model, value)
                yield gauge
        counters = [
            ("vllm:prompt_tokens_total", "Number of prefill tokens processed.", b.prompt_tokens_total),
            ("vllm:generation_tokens_total", "Number of generation tokens processed.", b.generation_tokens_total),
            ("vllm:request_success_total", "Count of successfully processed requests.", b.success_total),
        ]
        for name, help_text, total in counters:
            counter = CounterMetricFamily(name, help_text, labels=LABELS)
            counter.add_metric(model, total)
            yield counter


def routes(behaviour: Behaviour) -> list[web.RouteDef]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BehaviourCollector(behaviour))

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

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
