"""The runner's request bodies, settings, identity and small parsers: pure."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from kubernel_runner import calls, reaper
from kubernel_runner.identity import Identity, parse_identity, session_environ
from kubernel_runner.kernel import death_note
from kubernel_runner.settings import RunnerSettings
from kubernel_runner.terminal import error_frame, out_frame, parse_frame


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"mode": "query", "code": "1", "runId": None}, calls.ExecuteRequest("query", "1")),
        ({"code": "1"}, calls.ExecuteRequest("query", "1")),
        ({"mode": "query", "code": None, "runId": "my.run-1"}, calls.ExecuteRequest("query", "", "my.run-1")),
        ({"mode": "continue", "code": "", "runId": "r"}, calls.ExecuteRequest("continue", "", "r")),
        ({"mode": "input", "code": "bob", "runId": "r"}, calls.ExecuteRequest("input", "bob", "r")),
        (
            {
                "mode": "batch",
                "code": "",
                "runId": None,
                "options": {"build": "make", "exec": None, "buildLog": True},
            },
            calls.ExecuteRequest(
                "batch", "", None, {"clean": None, "build": "make", "exec": None, "buildLog": True}
            ),
        ),
        (
            {"mode": "batch", "options": None},
            calls.ExecuteRequest(
                "batch", "", None, {"clean": None, "build": None, "exec": None, "buildLog": False}
            ),
        ),
    ],
)
def test_execute_bodies(body: dict, expected: calls.ExecuteRequest) -> None:
    assert calls.parse_execute(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "x",
        {"mode": "exec"},
        {"mode": "continue"},
        {"mode": "input", "code": "x"},
        {"code": 1},
        {"runId": 5},
        {"runId": ""},
        {"runId": "../../x"},
        {"runId": "x" * 65},
        {"options": []},
        {"mode": "batch", "options": {"clean": 1}},
        {"mode": "batch", "options": {"buildLog": "yes"}},
    ],
)
def test_unusable_execute_bodies(body: Any) -> None:
    with pytest.raises(ValueError):
        calls.parse_execute(body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"code": "import o", "options": {"row": 0, "col": 8, "line": "import o", "post": ""}},
            ("import o", 8),
        ),
        ({"code": "pri", "options": {"post": "\nprint(1)\n"}}, ("pri\nprint(1)\n", 3)),
        ({"code": "", "options": {"line": "os.pa", "post": "th"}}, ("os.path", 5)),
        ({}, ("", 0)),
        ({"code": None, "options": None}, ("", 0)),
    ],
)
def test_completion_bodies(body: dict, expected: tuple[str, int]) -> None:
    assert calls.parse_complete(body) == expected


@pytest.mark.parametrize("body", [[], {"code": 3}, {"options": "x"}, {"options": {"line": 1}}])
def test_unusable_completion_bodies(body: Any) -> None:
    with pytest.raises(ValueError):
        calls.parse_complete(body)


@pytest.mark.parametrize(
    ("names", "ok"),
    [
        (["a"], True),
        (["a", "b/c"], True),
        ([], False),
        (["x"] * 65, False),
        ([""], False),
        (["x" * 5000], False),
    ],
)
def test_download_names(names: list[str], ok: bool) -> None:
    if ok:
        assert calls.parse_download(names) == names
    else:
        with pytest.raises(ValueError):
            calls.parse_download(names)


BASE = {"KUBERNEL_RUNNER_PORT": "2001", "KUBERNEL_RUNNER_IDENTITY": "/id"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (BASE, RunnerSettings(2001, Path("/id"))),
        (
            {
                **BASE,
                "KUBERNEL_RUNNER_WORKDIR": "/w",
                "KUBERNEL_RUNNER_UID": "1000",
                "KUBERNEL_RUNNER_CONTINUE_SECONDS": "1.5",
                "KUBERNEL_RUNNER_OUTPUT_LIMIT": "4096",
                "KUBERNEL_RUNNER_UPLOAD_LIMIT": "10",
                "KUBERNEL_RUNNER_REAP_SECONDS": "1",
            },
            RunnerSettings(2001, Path("/id"), Path("/w"), 1000, 1000, 1.5, 4096, 10, 1.0),
        ),
        (
            {**BASE, "KUBERNEL_RUNNER_UID": "1000", "KUBERNEL_RUNNER_GID": "100"},
            RunnerSettings(2001, Path("/id"), uid=1000, gid=100),
        ),
    ],
)
def test_settings(env: dict[str, str], expected: RunnerSettings) -> None:
    assert RunnerSettings.from_env(env) == expected


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "KUBERNEL_RUNNER_IDENTITY"),
        ({"KUBERNEL_RUNNER_IDENTITY": "/id"}, "KUBERNEL_RUNNER_PORT"),
        ({**BASE, "KUBERNEL_RUNNER_PORT": "0"}, "KUBERNEL_RUNNER_PORT"),
        ({**BASE, "KUBERNEL_RUNNER_PORT": "http"}, "KUBERNEL_RUNNER_PORT"),
        ({**BASE, "KUBERNEL_RUNNER_UID": "-1"}, "KUBERNEL_RUNNER_UID"),
        ({**BASE, "KUBERNEL_RUNNER_OUTPUT_LIMIT": "10"}, "KUBERNEL_RUNNER_OUTPUT_LIMIT"),
        ({**BASE, "KUBERNEL_RUNNER_CONTINUE_SECONDS": "0"}, "KUBERNEL_RUNNER_CONTINUE_SECONDS"),
    ],
)
def test_unusable_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        RunnerSettings.from_env(env)


@pytest.mark.parametrize(
    ("token", "document", "expected"),
    [
        (
            "t" * 32 + "\n",
            '{"sessionId": "s", "ownerAccessKey": "AK", "environ": {"A": "1"}}',
            Identity("t" * 32, "s", "AK", {"A": "1"}),
        ),
        ("t" * 16, "", Identity("t" * 16)),
        ("t" * 16, '{"environ": null}', Identity("t" * 16)),
    ],
)
def test_identity(token: str, document: str, expected: Identity) -> None:
    assert parse_identity(token, document) == expected


@pytest.mark.parametrize(
    ("token", "document"),
    [
        ("short", "{}"),
        ("t" * 16, '{"environ": {"A": 1}}'),
        ("t" * 16, '{"environ": []}'),
        ("t" * 16, "[]"),
        ("t" * 16, "not json"),
    ],
)
def test_unusable_identities(token: str, document: str) -> None:
    with pytest.raises(ValueError):
        parse_identity(token, document)


def test_the_sessions_environment() -> None:
    base = {
        "PATH": "/bin",
        "KUBERNEL_RUNNER_PORT": "2001",
        "KUBERNEL_RUNNER_IDENTITY": "/id",
        "IPYTHONDIR": "/tmp/x",
        "HOME": "/root",
        "PYTHONPATH": "/opt/kubernel/lib",
    }
    identity = Identity("t" * 16, environ={"A": "1", "PATH": "/usr/bin", "HOME": "/elsewhere"})
    assert session_environ(base, identity, Path("/home/work"), "work") == {
        "PATH": "/usr/bin",
        "PYTHONPATH": "/opt/kubernel/lib",
        "A": "1",
        "HOME": "/home/work",
        "USER": "work",
        "LOGNAME": "work",
    }
    assert "USER" not in session_environ(base, identity, Path("/w"), None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42 (python3) S 1 42 42 0 -1", (42, "S", 1)),
        ("7 (a b) c)) Z 3 7 7", (7, "Z", 3)),
        ("9 (sleep) Z 1 9 9 0", (9, "Z", 1)),
    ],
)
def test_proc_stat_lines(text: str, expected: tuple[int, str, int]) -> None:
    assert reaper.parse_stat(text) == expected


def test_zombie_children() -> None:
    stats = [(2, "Z", 1), (3, "S", 1), (4, "Z", 9), (5, "Z", 1)]
    assert reaper.zombie_children(stats, 1) == {2, 5}


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"type": "stdin", "chars": base64.b64encode(b"ls\n").decode()}, ("stdin", b"ls\n")),
        ({"type": "resize", "rows": 24, "cols": 80}, ("resize", (24, 80))),
        ({"type": "ping"}, ("ping", None)),
        ({"type": "restart"}, ("restart", None)),
    ],
)
def test_terminal_frames(frame: dict, expected: tuple) -> None:
    assert parse_frame(json.dumps(frame)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"type": "stdin", "chars": "***"}',
        '{"type": "resize", "rows": 0, "cols": 80}',
        '{"type": "resize", "rows": true, "cols": 80}',
        '{"type": "resize"}',
        '{"type": "exec"}',
        "{}",
    ],
)
def test_unusable_terminal_frames(text: str) -> None:
    with pytest.raises(ValueError):
        parse_frame(text)


def test_what_the_terminal_sends() -> None:
    assert json.loads(out_frame(b"\x1b[0m$ ")) == {
        "type": "out",
        "data": base64.b64encode(b"\x1b[0m$ ").decode(),
    }
    assert json.loads(error_frame("no")) == {"type": "error", "data": "no"}


@pytest.mark.parametrize(
    ("code", "oom", "says"),
    [
        (1, False, "exit status 1"),
        (-9, True, "killed by SIGKILL; the container ran out of memory"),
        (-11, False, "killed by SIGSEGV"),
        (-99, False, "killed by signal 99"),
        (None, False, "exit status None"),
    ],
)
def test_a_dead_kernels_note(code: int | None, oom: bool, says: str) -> None:
    note = death_note(code, oom)
    assert says in note and "the kernel died" in note and note.endswith("\n")
