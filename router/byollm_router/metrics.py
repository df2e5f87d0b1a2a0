"""Prometheus metrics: counts and latencies, labelled only by fixed, low-cardinality values.

Labels are route names, HTTP status codes, categories and error codes — never models from
requests, prompt data or anything a caller controls freely.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip

# The router's own added time is sub-millisecond when all is well: finer buckets there.
_OVERHEAD_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
)  # fmt: skip

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """One registry per app, so several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "byollm_router_requests_total",
            "Requests answered by the router.",
            ["route", "status"],
            registry=self.registry,
        )
        self.upstream = Counter(
            "byollm_router_upstream_responses_total",
            "Responses received from the upstream provider, by HTTP status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "byollm_router_upstream_errors_total",
            "Upstream failures without an HTTP response (unreachable, timeout, reset, blocked).",
            ["route", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "byollm_router_request_duration_seconds",
            "Time from request received to response finished (streams: to last chunk).",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "byollm_router_upstream_headers_seconds",
            "Time from sending upstream to receiving the upstream's response headers.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.overhead = Histogram(
            "byollm_router_overhead_seconds",
            "Time the router itself added to a request that went upstream: total time "
            "minus the waits for the upstream's headers and body chunks.",
            ["route", "provider"],
            buckets=_OVERHEAD_BUCKETS,
            registry=self.registry,
        )
        self.categories = Counter(
            "byollm_router_autoroute_total",
            "Auto-routed requests by chosen category.",
            ["category"],
            registry=self.registry,
        )
        self.client_disconnects = Counter(
            "byollm_router_client_disconnects_total",
            "Requests whose client went away before the response finished.",
            ["route"],
            registry=self.registry,
        )

        for metric in (
            self.requests,
            self.upstream,
            self.upstream_errors,
            self.latency,
            self.upstream_latency,
            self.overhead,
            self.categories,
            self.client_disconnects,
        ):
            _cache_children(metric)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _cache_children(metric: Counter | Histogram) -> None:
    """Make ``metric.labels(*values)`` a dict lookup once a label set has been seen.

    prometheus_client's ``labels`` validates and converts the values and takes a lock on
    every call (five calls per proxied request); the child it returns for the same values
    never changes, as the router never removes one. Label values are low-cardinality (see
    above), so the cache is as bounded as the metric itself.
    """
    children: dict[tuple[str, ...], Any] = {}
    labels = metric.labels

    def cached(*values: str) -> Any:
        child = children.get(values)
        if child is None:
            child = children[values] = labels(*values)
        return child

    metric.labels = cached  # type: ignore[method-assign,assignment]
