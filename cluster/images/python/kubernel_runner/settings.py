"""The runner's settings, read once from the environment the operator sets
(``kubernel/runner.py`` defines the values on the other side)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunnerSettings:
    port: int
    """The one TCP port, on every address [KUBERNEL_RUNNER_PORT]."""
    identity_dir: Path
    """The session's identity: ``token`` and ``identity.json`` (a Secret volume) [KUBERNEL_RUNNER_IDENTITY]."""
    workdir: Path = Path("/home/work")
    """The kernel's working directory; file calls stay inside it [KUBERNEL_RUNNER_WORKDIR]."""
    uid: int | None = None
    """User of the interpreter, batch commands and terminals when the runner is root [KUBERNEL_RUNNER_UID]."""
    gid: int | None = None
    """Their group [KUBERNEL_RUNNER_GID]."""
    continue_seconds: float = 3.0
    """How long an execute call waits before answering ``continued`` [KUBERNEL_RUNNER_CONTINUE_SECONDS]."""
    output_limit: int = 1 << 20
    """Console bytes one run keeps; the rest is dropped with a note [KUBERNEL_RUNNER_OUTPUT_LIMIT]."""
    upload_limit: int = 64 << 20
    """Largest upload request (413 beyond) [KUBERNEL_RUNNER_UPLOAD_LIMIT]."""

    @property
    def drops_privileges(self) -> bool:
        return self.uid is not None and os.geteuid() == 0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RunnerSettings:
        env = dict(os.environ if env is None else env)
        missing = [n for n in ("KUBERNEL_RUNNER_PORT", "KUBERNEL_RUNNER_IDENTITY") if not env.get(n)]
        if missing:
            raise SystemExit(f"kubernel_runner: set {', '.join(missing)} (the operator does, in the Pod spec)")
        uid, gid = env.get("KUBERNEL_RUNNER_UID"), env.get("KUBERNEL_RUNNER_GID")
        return cls(
            port=int(env["KUBERNEL_RUNNER_PORT"]),
            identity_dir=Path(env["KUBERNEL_RUNNER_IDENTITY"]),
            workdir=Path(env.get("KUBERNEL_RUNNER_WORKDIR", "/home/work")),
            uid=int(uid) if uid else None,
            gid=int(gid) if gid else (int(uid) if uid else None),
            continue_seconds=float(env.get("KUBERNEL_RUNNER_CONTINUE_SECONDS", "3")),
            output_limit=int(env.get("KUBERNEL_RUNNER_OUTPUT_LIMIT", str(1 << 20))),
            upload_limit=int(env.get("KUBERNEL_RUNNER_UPLOAD_LIMIT", str(64 << 20))),
        )
