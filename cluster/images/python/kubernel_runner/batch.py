"""Batch mode: clean, build and exec shell commands in the working directory,
their output streamed into the run (19.09's ``options.clean/build/exec``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

from .runs import Run
from .settings import RunnerSettings

# "*" asks for the image's default; this image has no build step and runs main.py.
DEFAULTS = {"clean": None, "build": None, "exec": "python3 main.py"}
STAGES = (("clean", "clean-finished"), ("build", "build-finished"), ("exec", "finished"))


def plan(options: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(stage, command, status reported at its end) for the commands given (pure)."""
    steps = []
    for stage, status in STAGES:
        command = options.get(stage)
        if command == "*":
            command = DEFAULTS[stage]
        if command:
            steps.append((stage, command, status))
    return steps


class Batch:
    def __init__(self, settings: RunnerSettings, env: dict[str, str]) -> None:
        self.settings = settings
        self.env = env
        self.process: asyncio.subprocess.Process | None = None

    async def run(self, options: dict[str, Any], run: Run) -> None:
        exit_code = 0
        for stage, command, status in plan(options):
            show = stage != "build" or bool(options.get("buildLog"))
            exit_code = await self._shell(command, run, show)
            if status == "finished" or exit_code != 0:
                break  # a failed clean or build ends the run with its code
            run.stage_finished(status, exit_code)
        run.finish(exit_code)

    async def _shell(self, command: str, run: Run, show: bool) -> int:
        drop: dict[str, Any] = {}
        if self.settings.drops_privileges:
            drop = {"user": self.settings.uid, "group": self.settings.gid, "extra_groups": []}
        self.process = await asyncio.create_subprocess_shell(
            command, cwd=self.settings.workdir, env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True, **drop)

        async def pump(stream: asyncio.StreamReader, kind: str) -> None:
            while chunk := await stream.read(1 << 16):
                if show:
                    run.add(kind, chunk.decode(errors="replace"))

        assert self.process.stdout and self.process.stderr
        await asyncio.gather(pump(self.process.stdout, "stdout"), pump(self.process.stderr, "stderr"))
        code = await self.process.wait()
        self.process = None
        return code if code >= 0 else 128 - code

    def interrupt(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)  # the shell and what it started
