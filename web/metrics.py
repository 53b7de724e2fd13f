"""Prometheus metrics: request count and latency histogram, per route template (recorded by
`web.middleware.EdgeMiddleware`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class HttpMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "chainlens_http_requests_total",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "chainlens_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )

    def total_requests(self) -> int:
        return int(
            sum(
                s.value
                for m in self.requests.collect()
                for s in m.samples
                if s.name.endswith("_total")
            )
        )
