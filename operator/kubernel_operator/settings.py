"""The operator's settings (pydantic-settings; see kubernel/settings.py): each field's
alias is its environment variable, its docstring its documentation."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from kubernel.settings import ServiceSettings


class OperatorSettings(ServiceSettings):
    """Settings of one operator process."""

    namespaces: Annotated[tuple[str, ...], NoDecode] = Field((), validation_alias="KUBERNEL_NAMESPACES")
    """Namespaces served, comma-separated (or kopf patterns such as `t-*`, `!kube-system`);
    empty serves every namespace."""
    idle_timeout_seconds: int = Field(3600, ge=0, validation_alias="KUBERNEL_IDLE_TIMEOUT")
    """Default idle timeout (s) of interactive sessions; 0 disables it."""
    start_deadline_seconds: int = Field(300, gt=0, validation_alias="KUBERNEL_START_DEADLINE")
    """How long (s) a Pod may stay unschedulable (the session then ends with
    `pending-timeout`), or scheduled kernels may take to start (`failed-to-start`)."""
    batch_timeout_seconds: int = Field(86400, ge=0, validation_alias="KUBERNEL_BATCH_TIMEOUT")
    """Run-time limit (s) of batch sessions, from the start of their run: past it the session
    ends with `exec-timeout` (a failure); 0: no limit."""
    terminated_retention_seconds: int = Field(3600, ge=0, validation_alias="KUBERNEL_TERMINATED_RETENTION")
    """How long (s) a session that ended stays visible before it is deleted."""
    pod_grace_seconds: int = Field(10, ge=0, validation_alias="KUBERNEL_POD_GRACE")
    """Grace period (s) given to kernel Pods when a session ends."""
    pod_create_attempts: int = Field(6, ge=1, le=100, validation_alias="KUBERNEL_POD_CREATE_ATTEMPTS")
    """Times a session's Pods are created, with backoff (1, 2, 4, ... s), while the API server
    answers with an error (a broken admission webhook, say) before the session ends with
    `failed-to-create`. A refusal for good (400, 403, 422) ends it at once; an API server
    that does not answer is waited for."""
    pool_bind_timeout_seconds: float = Field(5.0, gt=0, le=60, validation_alias="KUBERNEL_POOL_BIND_TIMEOUT")
    """How long (s) a warm kernel may take to take on its session (the runner's `/bind`);
    past it the kernel is discarded and the session starts cold (docs/pools.md)."""
    pool_resize_wait_seconds: float = Field(5.0, gt=0, le=60, validation_alias="KUBERNEL_POOL_RESIZE_WAIT")
    """How long (s) a claim waits for the kubelet to resize a warm kernel in place to the
    session's limits; past it (or when the node has no room) the session starts cold."""
    event_batch_seconds: float = Field(0.01, ge=0, le=1, validation_alias="KUBERNEL_EVENT_BATCH")
    """How long (s) kopf waits after an object's event for more of the same object before
    handling them as one (kopf's `batching.batch_window`, 0.1 s by default): every
    reaction (a create, a Pod Ready) waits this long, so it is small; the handlers are
    level-triggered and skip events that change nothing."""
    health_host: str = Field("0.0.0.0", validation_alias="KUBERNEL_OPERATOR_HEALTH_HOST")
    """Address of the liveness endpoint `/healthz`."""
    health_port: int = Field(8081, validation_alias="KUBERNEL_OPERATOR_HEALTH_PORT")
    """Port of the liveness endpoint `/healthz`."""
    metrics_port: int = Field(8082, ge=0, le=65535, validation_alias="KUBERNEL_OPERATOR_METRICS_PORT")
    """Port of the Prometheus endpoint `/metrics`, on the liveness endpoint's address; 0
    serves no metrics."""
    peering: str = Field("", validation_alias="KUBERNEL_PEERING")
    """kopf peering object that keeps one operator active among replicas (a `KopfPeering`
    in each served namespace, or a `ClusterKopfPeering` cluster-wide; the Helm chart sets
    it and installs kopf's peering CRDs); empty runs standalone."""

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return tuple(n for n in value.split(",") if n) if isinstance(value, str) else value

    @property
    def scans_cluster(self) -> bool:
        """Whether kopf must watch Namespaces and CRDs: when serving every namespace or
        namespace patterns (``t-*``). With exact names it need not, and a Role in those
        namespaces is all the operator needs (the chart's namespace scope)."""
        return not self.namespaces or any(c in ns for ns in self.namespaces for c in "*?!")
