"""Prometheus metrics of one API process: its own registry, with the process, platform
and build-info collectors, served at /metrics on the metrics port (kubernel/metrics.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kubernel.metrics import service_registry


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=lambda: service_registry("kubernel_api"))

    def __post_init__(self) -> None:
        self.requests = Counter(
            "kubernel_api_requests_total",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kubernel_api_request_duration_seconds",
            "Time to answer (streams: to open).",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.open_streams = Gauge(
            "kubernel_api_open_streams", "SSE clients connected.", registry=self.registry
        )
        self.events_sent = Counter(
            "kubernel_api_sse_events_sent_total",
            "Lifecycle messages written to SSE clients.",
            registry=self.registry,
        )
        self.dropped_streams = Counter(
            "kubernel_api_sse_streams_dropped_total",
            "SSE clients disconnected for falling too far behind.",
            registry=self.registry,
        )
        self.resumes = Counter(
            "kubernel_api_sse_resumes_total",
            "SSE streams resumed with Last-Event-ID, by where the missed entries came from: memory "
            "(the ring of recent entries) or listing (the API server).",
            ["source"],
            registry=self.registry,
        )
        self.entry_lag = Histogram(
            "kubernel_api_lifecycle_entry_lag_seconds",
            "From a lifecycle entry's time (the operator's clock) to this process receiving it from its watch: "
            "the event stream's delay before the API's own share.",
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.watch_healthy = Gauge(
            "kubernel_api_watch_healthy",
            "1 while the KernelSession watch is connected.",
            registry=self.registry,
        )
