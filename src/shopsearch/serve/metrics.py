"""Prometheus metrics of the service, exposed at ``GET /metrics`` in the text format.

Each app gets its own registry (not prometheus_client's global one), so several apps in one process
(tests, or an app per index) never clash. Requests are labelled by *route template*
(``/products/{product_id}``), never by raw path, to keep the number of series bounded. Index
gauges are read from the holder at scrape time, so they always describe the index now served.
With ``--workers N`` each worker keeps its own counters and a scrape reaches one of them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shopsearch.serve.holder import IndexHolder

# Seconds; dense search on CPU is ~1-20 ms, a cold or filtered hybrid can take longer.
# Anything else is counted as "other": a client must not be able to mint new series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _IndexCollector(Collector):
    """Gauges describing the index being served, read when Prometheus scrapes."""

    def __init__(self, holder: IndexHolder) -> None:
        self.holder = holder

    def collect(self) -> Iterator[Metric]:
        ready = GaugeMetricFamily("shopsearch_index_ready", "1 when an index is loaded and served")
        snapshot = self.holder.snapshot  # one read: the snapshot may be swapped meanwhile
        ready.add_metric([], 1.0 if snapshot is not None else 0.0)
        yield ready
        if snapshot is None:
            return
        for name, doc, value in (
            ("shopsearch_index_products", "products in the served index", snapshot.n_products),
            ("shopsearch_index_size_bytes", "bytes of the served index's files", snapshot.size_bytes),
            ("shopsearch_index_generation", "reload generation of the served index", snapshot.generation),
            ("shopsearch_index_loaded_timestamp_seconds", "when the served index was loaded", snapshot.loaded_at),
            ("shopsearch_result_cache_entries", "entries in the result cache", len(snapshot.cache)),
        ):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], float(value))
            yield gauge


class ServeMetrics:
    """The service's counters and histograms, in one registry."""

    def __init__(self, holder: IndexHolder) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "shopsearch_http_requests", "HTTP requests by route, method and status", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "shopsearch_http_request_duration_seconds", "HTTP request latency by route",
            ["route", "method"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.searches = Counter("shopsearch_searches", "searches by mode and cache use", ["mode", "cached"], registry=r)
        self.search_latency = Histogram(
            "shopsearch_search_duration_seconds", "time to rank a search (encode, retrieve, filter)",
            ["mode"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.reloads = Counter("shopsearch_index_reloads", "index reloads by outcome", ["outcome"], registry=r)
        # experiments: label values come from the experiment config and fixed lists, never from clients
        self.experiment_searches = Counter(
            "shopsearch_experiment_searches", "searches served in the experiment, by variant", ["variant"], registry=r
        )
        self.events = Counter("shopsearch_events", "shopper events received by POST /events, by action", ["action"], registry=r)
        self.verdicts = Counter("shopsearch_sbs_verdicts", "side-by-side verdicts recorded", ["verdict"], registry=r)
        r.register(_IndexCollector(holder))

    def observe_search(self, mode: str, cached: bool, seconds: float) -> None:
        self.searches.labels(mode=mode, cached=str(cached).lower()).inc()
        self.search_latency.labels(mode=mode).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts every HTTP request and times it, labelled by the route that handled it.

    A plain ASGI middleware (not ``BaseHTTPMiddleware``): it adds no task or body copy per request.
    """

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app dies before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "") if scope.get("method") in _METHODS else "other"
            self.metrics.requests.labels(route=route, method=method, status=str(status)).inc()
            self.metrics.latency.labels(route=route, method=method).observe(time.perf_counter() - started)
