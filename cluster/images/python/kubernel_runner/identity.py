"""Who the kernel works for: the session's token, owner and environment.

The runner starts unbound and binds once: today from the identity directory at
start-up (a Secret volume), later possibly through another channel, for a
container started before its session existed (a warm pool). Nothing that
depends on the session (the interpreter, its environment) starts before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


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
    data = json.loads(document or "{}")
    environ = data.get("environ") or {}
    if not isinstance(environ, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in environ.items()):
        raise ValueError("environ must map names to strings")
    return Identity(token, str(data.get("sessionId", "")), str(data.get("ownerAccessKey", "")), environ)


def read_identity(directory: Path) -> Identity | None:
    """The identity in ``directory``, or None while it is not there (yet)."""
    try:
        token = (directory / "token").read_text()
        document = (directory / "identity.json").read_text() if (directory / "identity.json").exists() else "{}"
    except OSError:
        return None
    return parse_identity(token, document)
