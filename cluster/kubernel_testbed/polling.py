"""Small helpers of the test bed's processes: progress lines, waiting with a deadline, ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path


def say(message: str) -> None:
    print(f"[testbed {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.1) -> None:
    """Poll ``check`` until it holds; raise with ``what`` when the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not ready yet is any failure
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f}s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PROGRESS_EVERY = 30.0
"""Seconds between the progress lines of a long build."""


def last_line(text: str, width: int = 100) -> str:
    """The last non-empty line of a log, cut to ``width`` (a progress line shows it)."""
    for line in reversed(text.splitlines()):
        if line.strip():
            line = line.strip()
            return line if len(line) <= width else line[: width - 1] + "…"
    return "(no output yet)"


def _tail(log: Path, size: int = 4096) -> str:
    with open(log, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - size))
        return f.read().decode(errors="replace")


def run_logged(
    argv: list[str],
    log: Path,
    what: str,
    say: Callable[[str], None],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    every: float = PROGRESS_EVERY,
) -> None:
    """A build of minutes: its output goes to ``log``, and every ``every`` seconds a line
    says how long it has run and what it printed last; a failure raises with the log's end."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        while True:
            try:
                code = proc.wait(timeout=every)
                break
            except subprocess.TimeoutExpired:
                say(f"{what}: {time.monotonic() - started:.0f}s so far; last: {last_line(_tail(log))}")
    if code != 0:
        raise RuntimeError(f"{what} failed ({code}); whole log: {log}\n{_tail(log)}")
