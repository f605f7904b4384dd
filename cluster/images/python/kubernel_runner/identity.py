"""Who the kernel works for: the session's token, owner and environment.

The runner starts unbound and binds once: from the identity directory at start-up
(a Secret volume), or, in a warm pool's kernel, through ``POST /bind`` from the
operator when a session claims it. A warm kernel's interpreter is started before
its session exists, with no session data; the bind gives it the session's
environment (``environ_code``) before any of the session's code runs.
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


def parse_bind(document: object) -> Identity:
    """The identity a ``POST /bind`` body carries (pure): ``token``, ``sessionId``,
    ``ownerAccessKey``, ``environ``; raises ValueError if unusable."""
    if not isinstance(document, dict):
        raise ValueError("a bind is a JSON object")
    token = document.get("token")
    if not isinstance(token, str):
        raise ValueError("the bind carries no token")
    rest = {k: v for k, v in document.items() if k != "token"}
    return parse_identity(token, json.dumps(rest))


def environ_code(environ: Mapping[str, str], workdir: Path) -> str:
    """Python that makes a running interpreter's environment ``environ`` and its working
    directory ``workdir``, leaving no name behind in the user's namespace (pure). Child
    processes started later (subprocess, ``!cmd``) inherit it through ``os.environ``."""
    return (
        "__import__('os').environ.clear(); "
        f"__import__('os').environ.update(__import__('json').loads({json.dumps(dict(environ))!r})); "
        f"__import__('os').chdir({str(workdir)!r})"
    )


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
