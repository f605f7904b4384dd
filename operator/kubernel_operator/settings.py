"""The operator's settings: typed, immutable, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from kubernel.connect import runner_key
from kubernel.images import ImageTable


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class OperatorSettings:
    """Settings of one operator process. Environment variables in brackets."""

    namespaces: tuple[str, ...] = ()
    """Namespaces served; empty means cluster-wide [KUBERNEL_NAMESPACES, comma-separated]."""
    idle_timeout_seconds: int = 3600
    """Default idle timeout of interactive sessions; 0 disables [KUBERNEL_IDLE_TIMEOUT]."""
    start_deadline_seconds: int = 300
    """How long a Pod may stay unschedulable before the session fails [KUBERNEL_START_DEADLINE]."""
    terminated_retention_seconds: int = 3600
    """How long a session that ended by itself stays visible before it is deleted
    [KUBERNEL_TERMINATED_RETENTION]."""
    timer_interval_seconds: float = 10.0
    """How often deadlines (idle, start, retention) are checked: their resolution. One
    kopf timer per session runs at this interval, so it sets the operator's idle CPU
    (make bench: 1 s cost ~2 ms of CPU per session per second) [KUBERNEL_TIMER_INTERVAL]."""
    pod_grace_seconds: int = 10
    """Grace period given to kernel Pods when a session ends [KUBERNEL_POD_GRACE]."""
    images: ImageTable = field(default_factory=ImageTable)
    """The image alias table and registry allow-list [KUBERNEL_IMAGES: a YAML file]."""
    health_port: int = 8081
    """Port of the liveness endpoint /healthz [KUBERNEL_OPERATOR_HEALTH_PORT]."""
    health_host: str = "0.0.0.0"
    """Address of the liveness endpoint [KUBERNEL_OPERATOR_HEALTH_HOST]."""
    runner_key: bytes = field(default=b"", repr=False)
    """The key runner tokens are derived from, shared with the API
    [KUBERNEL_RUNNER_KEY_FILE, else KUBERNEL_RUNNER_KEY]."""
    peering: str = ""
    """kopf peering object that keeps one operator active among replicas (the
    Helm chart sets it and installs kopf's peering CRDs); empty runs standalone
    [KUBERNEL_PEERING]."""

    @property
    def scans_cluster(self) -> bool:
        """Whether kopf must watch Namespaces and CRDs: when serving every namespace or
        namespace patterns (``t-*``). With exact names it need not, and a Role in those
        namespaces is all the operator needs (the chart's namespace scope)."""
        return not self.namespaces or any(c in ns for ns in self.namespaces for c in "*?!")

    @classmethod
    def from_env(cls) -> OperatorSettings:
        namespaces = tuple(n for n in _env("KUBERNEL_NAMESPACES", "").split(",") if n)
        return cls(
            namespaces=namespaces,
            idle_timeout_seconds=int(_env("KUBERNEL_IDLE_TIMEOUT", "3600")),
            start_deadline_seconds=int(_env("KUBERNEL_START_DEADLINE", "300")),
            terminated_retention_seconds=int(_env("KUBERNEL_TERMINATED_RETENTION", "3600")),
            timer_interval_seconds=float(_env("KUBERNEL_TIMER_INTERVAL", "10")),
            pod_grace_seconds=int(_env("KUBERNEL_POD_GRACE", "10")),
            images=ImageTable.load(os.environ.get("KUBERNEL_IMAGES")),
            health_port=int(_env("KUBERNEL_OPERATOR_HEALTH_PORT", "8081")),
            health_host=_env("KUBERNEL_OPERATOR_HEALTH_HOST", "0.0.0.0"),
            peering=_env("KUBERNEL_PEERING", ""),
            runner_key=runner_key(os.environ),
        )
