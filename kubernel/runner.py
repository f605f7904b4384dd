"""Where a kernel's code runner lives and how it is reached: shared by the operator
(which builds the Pod and its Secret) and the API (which calls the runner).

The runner (``cluster/images/python/kubernel_runner``, in the kernel image) reads everything it
needs from the environment the operator sets (``runner_env``), so these values are
defined here once. docs/runner.md has its protocol.
"""

from __future__ import annotations

import hashlib
import hmac

PORT = 2001
PORT_NAME = "runner"
HEALTH_PATH = "/health"
READINESS_WAIT_SECONDS = 8
"""The readiness probe asks the runner to answer as soon as it is ready, within this
long (``/health?wait=``), with a timeout just above: no failed probes while IPython starts."""
IDENTITY_DIR = "/var/run/kubernel/identity"
TOKEN_KEY = "token"
IDENTITY_KEY = "identity.json"
KERNEL_UID = 1000
"""``work`` in the kernel images: the default user (and group) of a kernel's container, the
runner and the user's code alike (the image table's ``security`` may name another)."""
WORKDIR = "/home/work"


KEY_ENV = "KUBERNEL_RUNNER_KEY"
KEY_FILE_ENV = "KUBERNEL_RUNNER_KEY_FILE"
MIN_KEY_BYTES = 32
MISSING_KEY = (
    f"no runner key: set {KEY_FILE_ENV} (a file) or {KEY_ENV} to at least {MIN_KEY_BYTES} bytes "
    "shared by the operator and the API (the Helm chart makes one; make run and the tests too)"
)


def token(key: bytes, namespace: str, session: str, uid: str) -> str:
    """A session's runner token, derived from the key the operator and the API share:
    the operator writes it into the session's Secret for the runner, and the API
    derives it again, so the API reads no Secrets in the sessions' namespace. A new
    session (new uid) of the same name gets another token."""
    return hmac.new(key, f"{namespace}/{session}/{uid}".encode(), hashlib.sha256).hexdigest()


def secret_name(session: str) -> str:
    """The Secret holding a session's runner token (owned by the KernelSession)."""
    return f"{session}-runner"


def runner_env() -> list[dict[str, str]]:
    """The runner's configuration, as container environment variables."""
    return [
        {"name": "KUBERNEL_RUNNER_PORT", "value": str(PORT)},
        {"name": "KUBERNEL_RUNNER_IDENTITY", "value": IDENTITY_DIR},
        {"name": "KUBERNEL_RUNNER_WORKDIR", "value": WORKDIR},
    ]


BIND_PATH = "/bind"
BIND_TOKEN_ENV = "KUBERNEL_RUNNER_BIND_TOKEN"


def bind_token(key: bytes, namespace: str, pod: str) -> str:
    """The token a warm pool's kernel Pod accepts its one bind with (``POST /bind``, the
    operator's): this Pod's alone, so a session that reads its own finds it useless, as its
    Pod is bound already and binds once."""
    return hmac.new(key, f"{namespace}/pool-bind/{pod}".encode(), hashlib.sha256).hexdigest()
