"""The API service's settings: typed, immutable, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from kubernel.connect import runner_key
from kubernel.images import ImageTable

from .limits import Limits


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class ApiSettings:
    """Settings of one API process. Environment variables in brackets."""

    host: str = "0.0.0.0"
    """Listen address [KUBERNEL_API_HOST]."""
    port: int = 8090
    """Listen port [KUBERNEL_API_PORT]."""
    namespace: str = "default"
    """Namespace where KernelSessions are created and read [KUBERNEL_API_NAMESPACE;
    in a Pod, defaults to the Pod's own namespace]."""
    keypair_namespace: str = ""
    """Namespace of the keypair Secrets; empty means the session namespace
    [KUBERNEL_KEYPAIR_NAMESPACE]."""
    runner_key: bytes = field(default=b"", repr=False)
    """The key runner tokens are derived from, shared with the operator
    [KUBERNEL_RUNNER_KEY_FILE, else KUBERNEL_RUNNER_KEY]."""
    clock_skew_seconds: int = 900
    """How far a request's Date may be from the server's clock [KUBERNEL_API_CLOCK_SKEW]."""
    max_wait_seconds: int = 3600
    """Server-side cap of how long POST /kernel waits for the start. maxWaitSeconds=0
    waits until the session starts or ends, as Backend.AI's manager does; the
    operator's start deadline ends that wait first [KUBERNEL_API_MAX_WAIT]."""
    destroy_wait_seconds: float = 30.0
    """How long DELETE /kernel/:id waits for kernel_terminated to report final
    stats, and PATCH for the restarted kernel [KUBERNEL_API_DESTROY_WAIT]."""
    max_body_bytes: int = 1 << 20
    """Largest accepted request body; larger gets 413 [KUBERNEL_API_MAX_BODY]."""
    heartbeat_seconds: float = 15.0
    """Interval of SSE heartbeat comments [KUBERNEL_API_HEARTBEAT]."""
    retry_ms: int = 3000
    """Reconnection delay sent to SSE clients as `retry:` [KUBERNEL_API_SSE_RETRY_MS]."""
    stream_queue_size: int = 2048
    """Messages buffered per SSE client; a client that falls this far behind is
    disconnected and resumes with Last-Event-ID [KUBERNEL_API_STREAM_QUEUE]."""
    stream_flush_seconds: float = 0.02
    """Shortest time between two writes to one SSE client; what arrives meanwhile goes
    out in the next write. Bounds the fan-out's work per client under a burst (one
    wake-up and write per interval, not per message); 0 writes each as it comes
    [KUBERNEL_API_STREAM_FLUSH]."""
    kube_timeout_seconds: float = 5.0
    """Timeout of each Kubernetes API call; beyond it the request gets a 503 [KUBERNEL_API_KUBE_TIMEOUT]."""
    server_limits: Limits = field(default_factory=Limits.server_default)
    """The most any session may ask for, whatever its keypair allows
    [KUBERNEL_API_LIMITS: JSON such as {"cpu": "16", "memory": "64Gi", "gpu": 4, "clusterSize": 8}]."""
    images: ImageTable = field(default_factory=ImageTable)
    """The image alias table and registry allow-list; the same file as the
    operator's [KUBERNEL_IMAGES]."""
    runner_timeout_seconds: float = 30.0
    """Longest wait for a kernel's code runner to answer one call (an execution answers
    `continued` well before) [KUBERNEL_API_RUNNER_TIMEOUT]."""
    runner_response_bytes: int = 4 << 20
    """Largest answer accepted from a code runner (the runner caps its output at 1 MiB per
    answer); beyond it the call fails with 502, so the API never holds more [KUBERNEL_API_RUNNER_RESPONSE]."""
    upload_bytes: int = 64 << 20
    """Largest upload (POST /kernel/:id/upload), streamed through; more is 413 [KUBERNEL_API_UPLOAD_MAX]."""
    logs_bytes: int = 1 << 20
    """Most of a kernel's container log GET /kernel/:id/logs returns (the newest part) [KUBERNEL_API_LOGS_MAX]."""
    default_idle_timeout_seconds: int | None = None
    """idleTimeoutSeconds written on new sessions; unset leaves the operator's default
    [KUBERNEL_API_IDLE_TIMEOUT]."""

    @property
    def keypairs_in(self) -> str:
        return self.keypair_namespace or self.namespace

    @classmethod
    def from_env(cls) -> ApiSettings:
        idle = os.environ.get("KUBERNEL_API_IDLE_TIMEOUT")
        limits = os.environ.get("KUBERNEL_API_LIMITS")
        return cls(
            host=_env("KUBERNEL_API_HOST", "0.0.0.0"),
            port=int(_env("KUBERNEL_API_PORT", "8090")),
            namespace=_env("KUBERNEL_API_NAMESPACE", _pod_namespace() or "default"),
            keypair_namespace=_env("KUBERNEL_KEYPAIR_NAMESPACE", ""),
            runner_key=runner_key(os.environ),
            clock_skew_seconds=int(_env("KUBERNEL_API_CLOCK_SKEW", "900")),
            max_wait_seconds=int(_env("KUBERNEL_API_MAX_WAIT", "3600")),
            destroy_wait_seconds=float(_env("KUBERNEL_API_DESTROY_WAIT", "30")),
            max_body_bytes=int(_env("KUBERNEL_API_MAX_BODY", str(1 << 20))),
            heartbeat_seconds=float(_env("KUBERNEL_API_HEARTBEAT", "15")),
            retry_ms=int(_env("KUBERNEL_API_SSE_RETRY_MS", "3000")),
            stream_queue_size=int(_env("KUBERNEL_API_STREAM_QUEUE", "2048")),
            stream_flush_seconds=float(_env("KUBERNEL_API_STREAM_FLUSH", "0.02")),
            kube_timeout_seconds=float(_env("KUBERNEL_API_KUBE_TIMEOUT", "5")),
            server_limits=Limits.model_validate_json(limits) if limits else Limits.server_default(),
            images=ImageTable.load(os.environ.get("KUBERNEL_IMAGES")),
            runner_timeout_seconds=float(_env("KUBERNEL_API_RUNNER_TIMEOUT", "30")),
            runner_response_bytes=int(_env("KUBERNEL_API_RUNNER_RESPONSE", str(4 << 20))),
            upload_bytes=int(_env("KUBERNEL_API_UPLOAD_MAX", str(64 << 20))),
            logs_bytes=int(_env("KUBERNEL_API_LOGS_MAX", str(1 << 20))),
            default_idle_timeout_seconds=int(idle) if idle else None,
        )


def _pod_namespace() -> str | None:
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None
