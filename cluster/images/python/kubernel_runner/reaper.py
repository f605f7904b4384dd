"""Zombies: the runner is the container's PID 1, so every orphan of the user's code
(``cmd &`` from a cell, a terminal's jobs) becomes its child; what ends must be reaped.

The runner also marks itself a child subreaper, so that orphans come to it wherever it
runs (and its tests see what the container sees). Its own children (the interpreter,
batch commands, shells) are waited for by whoever started them, at once; a zombie child
seen by two scans in a row has nobody waiting for it, and is reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
from collections.abc import Iterable
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def parse_stat(text: str) -> tuple[int, str, int]:
    """(pid, state, parent pid) from ``/proc/<pid>/stat`` (pure); the command name may
    hold spaces and parentheses, so the fields are counted from its last ')'."""
    pid = int(text.split(" ", 1)[0])
    rest = text[text.rindex(")") + 2 :].split()
    return pid, rest[0], int(rest[1])


def zombie_children(stats: Iterable[tuple[int, str, int]], parent: int) -> set[int]:
    """The pids of ``parent``'s children that ended and were not waited for (pure)."""
    return {pid for pid, state, ppid in stats if ppid == parent and state == "Z"}


def become_subreaper() -> bool:
    """prctl(PR_SET_CHILD_SUBREAPER): orphans below the runner are re-parented to it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _scan(proc: Path) -> list[tuple[int, str, int]]:
    found = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                found.append(parse_stat((entry / "stat").read_text()))
    return found


async def reap_forever(interval: float, proc: Path = Path("/proc")) -> None:
    me, seen = os.getpid(), set[int]()
    while True:
        await asyncio.sleep(interval)
        zombies = zombie_children(await asyncio.to_thread(_scan, proc), me)
        for pid in zombies & seen:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG never blocks
        seen = zombies - seen
