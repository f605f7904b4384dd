"""Prometheus metrics of the operator: its own registry with the process, platform and
build-info collectors (kubernel/metrics.py), served at /metrics on the metrics port."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kubernel.lifecycle import Phase
from kubernel.metrics import service_registry

SESSIONS = "kubernel_operator_sessions"


class SessionsByPhase(Collector):
    """``kubernel_operator_sessions{phase}``, counted at each scrape from the sessions this
    process holds (the scrape runs in the operator's event loop: no lock needed)."""

    def __init__(self, phases: Callable[[], Iterable[str]]) -> None:
        self.phases = phases

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(SESSIONS, self.__doc__ or "", labels=["phase"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = dict.fromkeys(Phase, 0)
        for phase in self.phases():
            counts[Phase(phase)] = counts.get(Phase(phase), 0) + 1
        family = GaugeMetricFamily(
            SESSIONS, "KernelSessions this operator holds, by phase.", labels=["phase"]
        )
        for phase, count in counts.items():
            family.add_metric([phase.value], count)
        yield family


@dataclass
class OperatorMetrics:
    registry: CollectorRegistry = field(default_factory=lambda: service_registry("kubernel_operator"))

    def __post_init__(self) -> None:
        self.reconcile_duration = Histogram(
            "kubernel_operator_reconcile_duration_seconds",
            "Time to bring one session's status up to its Pods (reconcile), API calls included.",
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.status_conflicts = Counter(
            "kubernel_operator_status_write_conflicts_total",
            "Status writes refused because the session moved on (409); each is read again and recomputed.",
            registry=self.registry,
        )
        self.lifecycle_entries = Counter(
            "kubernel_operator_lifecycle_entries_total",
            "Lifecycle entries written to session statuses, by event.",
            ["event"],
            registry=self.registry,
        )
        self.start_latency = Histogram(
            "kubernel_operator_session_start_seconds",
            "From a KernelSession's creation to its first kernel_started.",
            registry=self.registry,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
        )
        self.pod_creation_failures = Counter(
            "kubernel_operator_pod_creation_failures_total",
            "Kernel Pod (Service, Secret) creations that failed: rejected for good (the session "
            "ends) or an error that is retried.",
            ["outcome"],
            registry=self.registry,
        )
        self.pool_claims = Counter(
            "kubernel_operator_pool_claims_total",
            "Sessions that started on a warm pool's kernel (docs/pools.md).",
            registry=self.registry,
        )
        self.pool_misses = Counter(
            "kubernel_operator_pool_cold_starts_total",
            "Sessions of a pooled image that started cold, by why (pools.ColdStart codes).",
            ["reason"],
            registry=self.registry,
        )
        self.pool_claim_duration = Histogram(
            "kubernel_operator_pool_claim_duration_seconds",
            "From a session's start to its claimed kernel bound and sized (the claim's API calls included).",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def count_scheduled(self, size: Callable[[], int]) -> None:
        """``kubernel_operator_scheduled_deadlines``: sessions with a deadline or retry armed."""
        Gauge(
            "kubernel_operator_scheduled_deadlines",
            "Sessions with a deadline (start, idle, retention) or a retry armed.",
            registry=self.registry,
        ).set_function(size)

    def count_sessions(self, phases: Callable[[], Iterable[str]]) -> None:
        """Report ``kubernel_operator_sessions{phase}`` from ``phases`` at each scrape."""
        self.registry.register(SessionsByPhase(phases))
