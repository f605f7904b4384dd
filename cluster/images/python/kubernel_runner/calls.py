"""The bodies and queries of the runner's calls, checked (pure). Anything unusable is a
ValueError, which the server answers with a 400 problem."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MODES = ("query", "batch", "continue", "input")
RUN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
BATCH_COMMANDS = ("clean", "build", "exec")
FILES_MAX = 64
PATH_MAX = 4096


@dataclass(frozen=True)
class ExecuteRequest:
    mode: str
    code: str = ""
    run_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError(f"{what} must be a JSON object")
    return body


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def batch_options(options: dict[str, Any]) -> dict[str, Any]:
    """clean/build/exec: a string or null; buildLog: a boolean (accepted, see batch.py)."""
    checked: dict[str, Any] = {}
    for name in BATCH_COMMANDS:
        value = options.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"options.{name} must be a string or null")
        checked[name] = value
    build_log = options.get("buildLog", False)
    if not isinstance(build_log, bool):
        raise ValueError("options.buildLog must be a boolean")
    checked["buildLog"] = build_log
    return checked


def parse_execute(body: Any) -> ExecuteRequest:
    """``{"mode", "code", "runId", "options"}``: continue and input name their run; a new
    run may bring its own id (19.09: "the user-provided run identifier") or get one."""
    body = _object(body, "the body")
    mode = body.get("mode", "query")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    code = _text(body.get("code"), "code")
    run_id = body.get("runId")
    if run_id is not None and (not isinstance(run_id, str) or not RUN_ID.match(run_id)):
        raise ValueError("runId must be 1 to 64 letters, digits, '_', '.' or '-'")
    if mode in ("continue", "input") and run_id is None:
        raise ValueError(f"mode {mode} needs the runId of the run it continues")
    options = body.get("options")
    options = {} if options is None else _object(options, "options")
    if mode == "batch":
        options = batch_options(options)
    return ExecuteRequest(mode, code, run_id, options)


def parse_complete(body: Any) -> tuple[str, int]:
    """19.09's ``{"code", "options": {"row", "col", "line", "post"}}`` -> (text, cursor):
    ``code`` is the text before the cursor and ``post`` the rest; without ``code``, the
    current ``line`` (cursor at its end) is completed."""
    body = _object(body, "the body")
    code = _text(body.get("code"), "code")
    options = body.get("options")
    options = {} if options is None else _object(options, "options")
    line, post = _text(options.get("line"), "options.line"), _text(options.get("post"), "options.post")
    if code:
        return code + post, len(code)
    return line + post, len(line)


def parse_path(value: str | None, default: str) -> str:
    path = default if value is None else value
    if not path or len(path) > PATH_MAX:
        raise ValueError(f"a path is 1 to {PATH_MAX} characters")
    return path


def parse_download(names: list[str]) -> list[str]:
    if not 1 <= len(names) <= FILES_MAX:
        raise ValueError(f"name 1 to {FILES_MAX} files (query parameter 'file')")
    return [parse_path(name, "") for name in names]
