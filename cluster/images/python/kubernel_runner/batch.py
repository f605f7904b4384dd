"""Batch mode: 19.09's ``options.clean``, ``build`` and ``exec`` shell commands, run in the
working directory as the kernel user, their output streamed into the run.

The sequence (as 19.09's kernel runner did, docs/runner.md): each given command runs
in turn and its end is answered on its own, ``clean-finished`` then ``build-finished``
then ``finished``, each with its exit code; an empty or null command is skipped without
an answer. ``"*"`` asks for the image's default (nothing to clean; ``make`` when there is a
Makefile, else ``pip install -e .`` when there is a setup.py, else nothing to build;
``python3 main.py``, or 127 without a main.py). A failed build skips exec, which finishes
with 127. Unlike 19.09 (whose run then never finished) a run without exec finishes with
the exit code of its last step (0 when nothing ran). ``buildLog`` is accepted and, as in
19.09, ignored: the build's output is always part of the console.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .runs import Run
from .settings import RunnerSettings

STAGES = ("clean", "build", "exec")
STATUS = {"clean": "clean-finished", "build": "build-finished", "exec": "finished"}
HEURISTIC_FILES = ("Makefile", "setup.py", "main.py")
NOT_FOUND = 127
SHELLS = ("/bin/bash", "/bin/sh")


@dataclass(frozen=True)
class Step:
    """What a stage does: run ``command``, or (None) report ``exit_code`` without running anything."""

    stage: str
    status: str
    command: str | None
    exit_code: int = 0


def default_command(stage: str, present: frozenset[str], python: str) -> str | int:
    """What ``"*"`` means for ``stage`` given the files present: a command, or an exit code."""
    if stage == "build":
        if "Makefile" in present:
            return "make"
        return f"{python} -m pip install -e ." if "setup.py" in present else 0
    if stage == "exec":
        return f"{python} main.py" if "main.py" in present else NOT_FOUND
    return 0  # clean: nothing by default


def step(
    stage: str, given: Any, *, present: frozenset[str], python: str, last_code: int, build_failed: bool
) -> Step | None:
    """The step for ``stage`` (pure); None: skipped, nothing answered. exec always has one."""
    status = STATUS[stage]
    if stage == "exec" and build_failed:
        return Step(stage, status, None, NOT_FOUND)
    if given is None or given == "":
        return Step(stage, status, None, last_code) if stage == "exec" else None
    if given == "*":
        command = default_command(stage, present, python)
        return (
            Step(stage, status, None, command) if isinstance(command, int) else Step(stage, status, command)
        )
    return Step(stage, status, str(given))


def signal_exit_code(returncode: int) -> int:
    """A process's return code as a shell reports it: killed by signal N -> 128 + N."""
    return returncode if returncode >= 0 else 128 - returncode


class Batch:
    def __init__(self, settings: RunnerSettings, env: dict[str, str]) -> None:
        self.settings = settings
        self.env = env
        self.process: asyncio.subprocess.Process | None = None

    def _present(self) -> frozenset[str]:
        return frozenset(n for n in HEURISTIC_FILES if (self.settings.workdir / n).is_file())

    async def run(self, options: dict[str, Any], run: Run) -> None:
        last, build_failed = 0, False
        try:
            for stage in STAGES:
                planned = step(
                    stage,
                    options.get(stage),
                    present=self._present(),
                    python=sys.executable,
                    last_code=last,
                    build_failed=build_failed,
                )
                if planned is None:
                    continue
                code = await self._shell(planned.command, run) if planned.command else planned.exit_code
                build_failed = build_failed or (stage == "build" and code != 0)
                last = code
                if planned.status == "finished":
                    run.finish(code)
                else:
                    run.stage_finished(planned.status, code)
        except OSError as exc:  # the shell could not start (19.09 reported -1 here)
            run.add("stderr", f"[kubernel: the command could not start: {exc.strerror or exc}]\n")
            run.finish(-1)

    async def _shell(self, command: str, run: Run) -> int:
        drop: dict[str, Any] = {}
        if self.settings.drops_privileges:
            drop = {"user": self.settings.uid, "group": self.settings.gid, "extra_groups": []}
        shell = next((s for s in SHELLS if Path(s).exists()), None)
        self.process = await asyncio.create_subprocess_exec(
            shell or "/bin/sh",
            "-c",
            command,
            cwd=self.settings.workdir,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            **drop,
        )

        async def pump(stream: asyncio.StreamReader, kind: str) -> None:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span reads
            while chunk := await stream.read(1 << 16):
                run.add(kind, decoder.decode(chunk))
            run.add(kind, decoder.decode(b"", final=True))

        assert self.process.stdout is not None and self.process.stderr is not None
        try:
            await asyncio.gather(pump(self.process.stdout, "stdout"), pump(self.process.stderr, "stderr"))
            return signal_exit_code(await self.process.wait())
        finally:
            self.process = None

    def signal(self, signum: int = signal.SIGINT) -> None:
        """To the running command's process group (the shell and what it started)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signum)
