"""Who the kernel works for: the session's token, owner and environment.

The runner starts unbound and binds once: today from the identity directory at
start-up (a Secret volume), later possibly through another channel, for a
container started before its session existed (a warm pool). Nothing that
depends on the session (the interpreter, its environment) starts before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

RUNNER_ONLY = ("IPYTHONDIR",)
"""The runner's own variables, never the session's (with every KUBERNEL_RUNNER_* one)."""


@dataclass(frozen=True)
class Identity:
    token: str
    session_id: str = ""
    owner_access_key: str = ""
    environ: dict[str, str] = field(default_factory=dict)


def parse_identity(token: str, document: str) -> Identity:
    """The identity from the Secret's two keys (pure); raises ValueError if unusable."""
    token = token.strip()
    if len(token) < 16:
        raise ValueError("the token is missing or too short")
    data = json.loads(document or "{}")  # a JSONDecodeError is a ValueError
    if not isinstance(data, dict):
        raise ValueError("identity.json must hold a JSON object")
    environ = data.get("environ")
    environ = {} if environ is None else environ
    if not isinstance(environ, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in environ.items()
    ):
        raise ValueError("environ must map names to strings")
    return Identity(token, str(data.get("sessionId", "")), str(data.get("ownerAccessKey", "")), environ)


def read_identity(directory: Path) -> Identity | None:
    """The identity in ``directory``, or None while it is not there (yet)."""
    try:
        token = (directory / "token").read_text()
        document = (
            (directory / "identity.json").read_text() if (directory / "identity.json").exists() else "{}"
        )
    except OSError:
        return None
    return parse_identity(token, document)


def session_environ(
    base: Mapping[str, str], identity: Identity, workdir: Path, user: str | None
) -> dict[str, str]:
    """The environment of the interpreter, batch commands and terminals (pure): the
    container's, without the runner's own settings, plus the session's ``environ``;
    HOME is the working directory, USER/LOGNAME the kernel user's name when known."""
    env = {k: v for k, v in base.items() if not k.startswith("KUBERNEL_RUNNER_") and k not in RUNNER_ONLY}
    env.update(identity.environ)
    env["HOME"] = str(workdir)
    if user:
        env["USER"] = env["LOGNAME"] = user
    return env
