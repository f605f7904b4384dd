"""The API service's settings (pydantic-settings; see kubernel/settings.py): each field's
alias is its environment variable, its docstring its documentation."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from kubernel.settings import ServiceSettings

from .limits import Limits

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _pod_namespace() -> str:
    """The Pod's own namespace when running in one, else `default`."""
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


class ApiSettings(ServiceSettings):
    """Settings of one API process."""

    host: str = Field("0.0.0.0", validation_alias="KUBERNEL_API_HOST")
    """Listen address."""
    port: int = Field(8090, validation_alias="KUBERNEL_API_PORT")
    """Listen port."""
    metrics_port: int = Field(9090, ge=0, le=65535, validation_alias="KUBERNEL_API_METRICS_PORT")
    """Port of the Prometheus endpoint `/metrics`, on the listen address: apart from the
    API's port, so an Ingress for the API does not publish it; 0 serves no metrics."""
    namespace: str = Field(default_factory=_pod_namespace, validation_alias="KUBERNEL_API_NAMESPACE")
    """Namespace where KernelSessions are created and read; unset, the Pod's own namespace
    (in a Pod), else `default`."""
    keypair_namespace: str = Field("", validation_alias="KUBERNEL_KEYPAIR_NAMESPACE")
    """Namespace of the keypair Secrets; empty means the session namespace."""
    clock_skew_seconds: int = Field(900, ge=0, validation_alias="KUBERNEL_API_CLOCK_SKEW")
    """How far (s) a request's Date may be from the server's clock."""
    max_wait_seconds: int = Field(3600, ge=0, validation_alias="KUBERNEL_API_MAX_WAIT")
    """Server-side cap (s) of how long POST /kernel waits for the start. maxWaitSeconds=0
    waits until the session starts or ends, as Backend.AI's manager does; the operator's
    start deadline ends that wait first."""
    destroy_wait_seconds: float = Field(30.0, ge=0, validation_alias="KUBERNEL_API_DESTROY_WAIT")
    """How long (s) DELETE /kernel/:id waits for kernel_terminated to report final stats,
    and PATCH for the restarted kernel."""
    max_body_bytes: int = Field(1 << 20, gt=0, validation_alias="KUBERNEL_API_MAX_BODY")
    """Largest accepted request body (bytes); larger gets 413 (uploads have their own limit)."""
    graphql_max_cost: int = Field(1000, gt=0, validation_alias="KUBERNEL_API_GRAPHQL_MAX_COST")
    """Largest cost of one GraphQL query (1 per field; a session list its `limit`); more is
    400 before it runs. A list of 100 sessions costs about 140."""
    heartbeat_seconds: float = Field(15.0, gt=0, validation_alias="KUBERNEL_API_HEARTBEAT")
    """Interval (s) of SSE heartbeat comments."""
    retry_ms: int = Field(3000, ge=0, validation_alias="KUBERNEL_API_SSE_RETRY_MS")
    """Reconnection delay (ms) sent to SSE clients as `retry:`."""
    stream_queue_size: int = Field(2048, gt=0, validation_alias="KUBERNEL_API_STREAM_QUEUE")
    """Messages buffered per SSE client; a client that falls this far behind is
    disconnected and resumes with Last-Event-ID."""
    resume_entries: int = Field(10_000, ge=0, validation_alias="KUBERNEL_API_RESUME_ENTRIES")
    """Recent lifecycle entries kept in memory (with their messages), so that a stream
    resumed with Last-Event-ID inside them needs no listing at the API server; older resume
    points are listed (one listing shared by every resume waiting for it). 0: always list."""
    stream_buffer_bytes: int = Field(256 << 10, gt=0, validation_alias="KUBERNEL_API_STREAM_BUFFER")
    """Bytes written to an SSE client that its socket has not taken yet; a client that
    would go past this is disconnected and resumes with Last-Event-ID. With the queue
    above, what one client can hold of the server's memory."""
    stream_flush_seconds: float = Field(0.02, ge=0, validation_alias="KUBERNEL_API_STREAM_FLUSH")
    """Shortest time (s) between two passes of the SSE writer; what arrives meanwhile goes
    out in the next pass, one write per client. Under a burst a pass takes longer and the
    batches grow by themselves; 0 starts the next pass as soon as something comes."""
    kube_timeout_seconds: float = Field(5.0, gt=0, validation_alias="KUBERNEL_API_KUBE_TIMEOUT")
    """Timeout (s) of each Kubernetes API call; beyond it the request gets a 503."""
    kube_concurrency: int = Field(64, gt=0, le=1000, validation_alias="KUBERNEL_API_KUBE_CONCURRENCY")
    """Kubernetes API calls in flight at once per API process. More wait their turn, for
    up to 6 times the timeout above, before their own timeout starts (1,000 creations
    at once queue here instead of timing out behind each other; make bench)."""
    server_limits: Limits = Field(
        default_factory=Limits.server_default, validation_alias="KUBERNEL_API_LIMITS"
    )
    """The most any session may ask for, whatever its keypair allows: JSON such as
    `{"cpu": "64", "memory": "256Gi", "gpu": 8, "clusterSize": 16}` (those are the defaults)."""
    runner_timeout_seconds: float = Field(30.0, gt=0, validation_alias="KUBERNEL_API_RUNNER_TIMEOUT")
    """Longest wait (s) for a kernel's code runner to answer one call (an execution
    answers `continued` well before)."""
    runner_response_bytes: int = Field(4 << 20, gt=0, validation_alias="KUBERNEL_API_RUNNER_RESPONSE")
    """Largest answer (bytes) accepted from a code runner (the runner caps its output at
    1 MiB per answer); beyond it the call fails with 502, so the API never holds more."""
    upload_bytes: int = Field(64 << 20, gt=0, validation_alias="KUBERNEL_API_UPLOAD_MAX")
    """Largest upload (bytes; POST /kernel/:id/upload), streamed through; more is 413."""
    logs_bytes: int = Field(1 << 20, gt=0, validation_alias="KUBERNEL_API_LOGS_MAX")
    """Most of a kernel's container log (bytes) GET /kernel/:id/logs returns (the newest part)."""
    login_max_age_seconds: int = Field(8 * 3600, gt=0, validation_alias="KUBERNEL_API_LOGIN_MAX_AGE")
    """How long (s) a browser's login cookie lasts (docs/console.md); an older cookie is refused."""
    cookie_secure: bool | None = Field(None, validation_alias="KUBERNEL_API_COOKIE_SECURE")
    """Mark the login cookie Secure: true, false, or unset for when the request came over
    TLS (to this process, or to the proxy in front, per X-Forwarded-Proto)."""
    login_attempts_per_key: int = Field(10, gt=0, validation_alias="KUBERNEL_API_LOGIN_ATTEMPTS_PER_KEY")
    """Failed logins per access key per minute; further failed ones are 429 with Retry-After
    (a right login is never refused for them)."""
    login_attempts_per_address: int = Field(
        30, gt=0, validation_alias="KUBERNEL_API_LOGIN_ATTEMPTS_PER_ADDRESS"
    )
    """Failed logins per client address per minute (behind a proxy, the proxy's address: all
    clients share it, so a right login is never refused for them)."""
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        ("*",), validation_alias="KUBERNEL_API_CORS_ORIGINS"
    )
    """Origins whose pages may call the API with signed requests (CORS), comma-separated;
    `*` is any, as Backend.AI's server; empty is none. Never with cookies (credentials)."""
    rate_limit: int = Field(5000, gt=0, validation_alias="KUBERNEL_API_RATE_LIMIT")
    """Requests per keypair in a rolling 15 minutes (Backend.AI's `rate_limit`), unless the
    keypair's limits say `rateLimit`; more are 429 with Retry-After. Every signed answer says
    where its caller stands: `X-RateLimit-Limit`, `-Remaining`, `-Window`. Per process."""
    auth_failures_per_key: int = Field(10, gt=0, validation_alias="KUBERNEL_API_AUTH_FAILURES_PER_KEY")
    """Failed signatures (or dates) per access key per minute; beyond, that key's failing
    requests are 429 with Retry-After until the minute's first failure is a minute old. A
    valid signature is never refused for them: only the secret's holder can make one."""
    auth_failures_per_address: int = Field(
        30, gt=0, validation_alias="KUBERNEL_API_AUTH_FAILURES_PER_ADDRESS"
    )
    """Failed signatures per client address per minute; beyond, that address's failing
    requests are 429 likewise (behind a proxy, the proxy's address, which every client
    shares: valid signatures from it are served all the same)."""
    replay_cache_entries: int = Field(200_000, ge=0, validation_alias="KUBERNEL_API_REPLAY_CACHE")
    """Signatures remembered inside the date window (`KUBERNEL_API_CLOCK_SKEW`): a signature
    used once is refused again (401), with any body. 0 turns the check off. Per process."""
    sessions_per_keypair: int = Field(1000, gt=0, validation_alias="KUBERNEL_API_SESSIONS_PER_KEYPAIR")
    """Sessions one keypair may hold, live and ended (an ended one is kept for the retention
    time); one more is 412 (`quota-exceeded`). Counted from this process's watch, so replicas
    creating at the same moment may pass it by the creates in flight."""
    restarts_per_session: int = Field(6, gt=0, validation_alias="KUBERNEL_API_RESTARTS_PER_SESSION")
    """Restarts (PATCH /kernel/:id) of one session per 10 minutes; one more is 429 with
    Retry-After. Per process."""
    streams_per_keypair: int = Field(32, gt=0, validation_alias="KUBERNEL_API_STREAMS_PER_KEYPAIR")
    """Event streams one keypair may hold open on one API process; one more is 429."""
    connection_idle_seconds: float = Field(30.0, gt=0, validation_alias="KUBERNEL_API_CONNECTION_IDLE")
    """A connection that sends no complete request head this long after it opened, or after
    its last answer, is closed (slow and idle clients; aiohttp's own default is an hour)."""
    body_seconds: float = Field(30.0, gt=0, validation_alias="KUBERNEL_API_BODY_TIMEOUT")
    """Longest time (s) to receive a request body (uploads excepted: they stream); slower is 408."""
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (), validation_alias="KUBERNEL_API_ALLOWED_HOSTS"
    )
    """Host names the API answers to, comma-separated (behind an ingress, its public host);
    any other `Host` is 400 before anything else is read (health checks excepted). Empty:
    any host."""
    default_idle_timeout_seconds: int | None = Field(None, ge=0, validation_alias="KUBERNEL_API_IDLE_TIMEOUT")
    """idleTimeoutSeconds written on new sessions; unset leaves the operator's default."""

    @field_validator("cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return tuple(o.strip() for o in value.split(",") if o.strip()) if isinstance(value, str) else value

    @property
    def keypairs_in(self) -> str:
        return self.keypair_namespace or self.namespace
