"""The runner's settings, read once from the environment the operator sets in the Pod
spec (``kubernel/runner.py`` defines the values on the other side)."""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunnerSettings:
    port: int
    """The one TCP port, bound on 0.0.0.0 [KUBERNEL_RUNNER_PORT, required]."""
    identity_dir: Path | None
    """The session's identity: files ``token`` (the bearer secret) and ``identity.json``
    (``sessionId``, ``ownerAccessKey``, ``environ``), a Secret volume [KUBERNEL_RUNNER_IDENTITY,
    required unless KUBERNEL_RUNNER_BIND_TOKEN is set]."""
    workdir: Path = Path("/home/work")
    """The kernel's working directory; every file call stays inside it [KUBERNEL_RUNNER_WORKDIR]."""
    uid: int | None = None
    """User of the interpreter, batch commands and terminals when the runner is root; the
    runner itself stays root (the token file and its memory out of the user code's reach).
    Unset: nobody changes user [KUBERNEL_RUNNER_UID]."""
    gid: int | None = None
    """Their group (default: the uid) [KUBERNEL_RUNNER_GID]."""
    continue_seconds: float = 3.0
    """How long one execute call waits before answering ``continued`` [KUBERNEL_RUNNER_CONTINUE_SECONDS]."""
    output_limit: int = 1 << 20
    """Console bytes one run keeps (and so one answer carries at most); the rest is
    dropped and one stderr item says how much [KUBERNEL_RUNNER_OUTPUT_LIMIT]."""
    upload_limit: int = 64 << 20
    """Bytes one upload request may bring; more is 413 [KUBERNEL_RUNNER_UPLOAD_LIMIT]."""
    reap_seconds: float = 5.0
    """How often ended orphans (zombies) of the user's code are looked for [KUBERNEL_RUNNER_REAP_SECONDS]."""
    bind_token: str | None = None
    """A warm pool's kernel: the interpreter starts at once, with no session, and the one
    ``POST /bind`` carrying this token (the operator's, for this Pod alone) gives it its
    session; unset: the identity directory binds it at start [KUBERNEL_RUNNER_BIND_TOKEN]."""

    @property
    def warm(self) -> bool:
        return self.bind_token is not None

    @property
    def drops_privileges(self) -> bool:
        return self.uid is not None and os.geteuid() == 0

    @property
    def user_name(self) -> str | None:
        """The kernel user's name (USER in its environment), if it has one."""
        try:
            return pwd.getpwuid(self.uid if self.uid is not None else os.geteuid()).pw_name
        except KeyError:
            return None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RunnerSettings:
        """Raises ValueError naming the variable that is missing or wrong."""
        env = os.environ if env is None else env

        def number(name: str, default: str | None, kind: type, low: float, high: float) -> float | int:
            text = env.get(name) or default
            if text is None:
                raise ValueError(f"{name} is required (the operator sets it in the Pod spec)")
            try:
                value = kind(text)
            except ValueError:
                raise ValueError(f"{name} must be a number, not {text!r}") from None
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}")
            return value

        identity = env.get("KUBERNEL_RUNNER_IDENTITY")
        bind_token = env.get("KUBERNEL_RUNNER_BIND_TOKEN") or None
        if bind_token is not None and len(bind_token) < 32:
            raise ValueError("KUBERNEL_RUNNER_BIND_TOKEN must be at least 32 characters")
        if not identity and bind_token is None:
            raise ValueError("KUBERNEL_RUNNER_IDENTITY is required (the operator sets it in the Pod spec)")
        uid = (
            int(number("KUBERNEL_RUNNER_UID", None, int, 0, 2**31))
            if env.get("KUBERNEL_RUNNER_UID")
            else None
        )
        gid = (
            int(number("KUBERNEL_RUNNER_GID", None, int, 0, 2**31)) if env.get("KUBERNEL_RUNNER_GID") else uid
        )
        return cls(
            port=int(number("KUBERNEL_RUNNER_PORT", None, int, 1, 65535)),
            identity_dir=Path(identity) if identity else None,
            bind_token=bind_token,
            workdir=Path(env.get("KUBERNEL_RUNNER_WORKDIR") or cls.workdir),
            uid=uid,
            gid=gid,
            # The defaults are the fields' own (written once, above).
            continue_seconds=float(
                number("KUBERNEL_RUNNER_CONTINUE_SECONDS", str(cls.continue_seconds), float, 0.05, 600)
            ),
            output_limit=int(
                number("KUBERNEL_RUNNER_OUTPUT_LIMIT", str(cls.output_limit), int, 1024, 1 << 30)
            ),
            upload_limit=int(number("KUBERNEL_RUNNER_UPLOAD_LIMIT", str(cls.upload_limit), int, 1, 1 << 40)),
            reap_seconds=float(
                number("KUBERNEL_RUNNER_REAP_SECONDS", str(cls.reap_seconds), float, 0.05, 3600)
            ),
        )
