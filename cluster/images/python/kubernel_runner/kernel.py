"""The interpreter: an ipykernel started and driven with jupyter_client.

It keeps its state (variables, imports) between executions. It runs as the kernel user
when the runner is root; its connection file is that user's. A query's exit code is 0
whether or not the code raised (19.09's semantics: the traceback is on stderr); a kernel
that dies ends its runs with exit code 1 and a note on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from . import stats
from .results import console_items
from .runs import Run
from .settings import RunnerSettings

KERNEL_NAME = "python3"
START_TIMEOUT = 60.0
COMPLETE_TIMEOUT = 5.0
DRAIN_SECONDS = 0.2
"""After the kernel's process ended: time for output it sent just before to arrive."""


def death_note(returncode: int | None, out_of_memory: bool) -> str:
    """What a run whose kernel died says on stderr (pure)."""
    if returncode is not None and returncode < 0:
        try:
            how = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"killed by signal {-returncode}"
    else:
        how = f"exit status {returncode}"
    cause = "; the container ran out of memory" if out_of_memory else ""
    return f"\n[kubernel: the kernel died ({how}{cause}); its state is gone and the session ends]\n"


class _KernelManager(AsyncKernelManager):
    """Hands the connection file to the kernel's user each time jupyter_client writes it
    (as root, mode 0600, right before the launch)."""

    file_owner: tuple[int, int] | None = None

    def write_connection_file(self, **kwargs: Any) -> None:
        super().write_connection_file(**kwargs)
        if self.file_owner is not None:
            os.chown(self.connection_file, *self.file_owner)


class JupyterKernel:
    def __init__(self, settings: RunnerSettings, on_death: Callable[[int | None], None]) -> None:
        self.settings = settings
        self.on_death = on_death
        self.km: _KernelManager | None = None
        self.kc: Any = None
        self.alive = False
        self._runs: dict[str, Run] = {}  # execute msg_id -> run
        self._replies: dict[str, asyncio.Future[dict]] = {}  # other shell requests
        self._replied: set[str] = set()  # executions whose reply came, until their output is all in
        self._idle: set[str] = set()  # executions whose output is all in, until their reply came
        self._tasks: list[asyncio.Task] = []
        self._oom_kills = 0

    async def start(self, env: dict[str, str]) -> None:
        """Launch the interpreter with ``env`` in the working directory and wait until it answers."""
        runtime = Path(tempfile.mkdtemp(prefix="kubernel-kernel-"))
        self.km = _KernelManager(kernel_name=KERNEL_NAME, connection_file=str(runtime / "kernel.json"))
        launch: dict[str, Any] = {}
        if self.settings.drops_privileges:
            assert self.settings.uid is not None and self.settings.gid is not None
            owner = (self.settings.uid, self.settings.gid)
            os.chown(runtime, *owner)
            self.km.file_owner = owner
            launch = {"user": owner[0], "group": owner[1], "extra_groups": []}
        self._oom_kills = stats.oom_kills(stats.read_files())
        await self.km.start_kernel(env=env, cwd=str(self.settings.workdir), **launch)
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=START_TIMEOUT)
        self.alive = True
        self._tasks = [
            asyncio.create_task(loop()) for loop in (self._iopub, self._shell, self._stdin, self._watch)
        ]

    async def run_silently(self, code: str, timeout: float) -> None:
        """Run ``code`` with no output, no history and no execution count (the bind's
        environment); raises RuntimeError if it fails or the kernel does not answer."""
        msg_id = self.kc.execute(code, silent=True, store_history=False, allow_stdin=False)
        future: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self._replies[msg_id] = future
        try:
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RuntimeError("the interpreter did not answer") from None
        finally:
            self._replies.pop(msg_id, None)
        if reply.get("status") != "ok":
            raise RuntimeError(f"the interpreter refused: {reply.get('ename', 'error')}")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km is not None:
            with contextlib.suppress(Exception):
                await self.km.shutdown_kernel(now=True)
        self.alive = False

    # -- requests ------------------------------------------------------------------
    def execute(self, code: str, run: Run) -> None:
        msg_id = self.kc.execute(code, allow_stdin=True, stop_on_error=False)
        self._runs[msg_id] = run

    def send_input(self, text: str) -> None:
        self.kc.input(text)

    async def interrupt(self) -> None:
        if self.km is not None and self.alive:
            await self.km.interrupt_kernel()

    async def complete(self, code: str, cursor: int) -> list[str]:
        """The kernel's matches, or none when it does not answer in time."""
        msg_id = self.kc.complete(code, cursor)
        future: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self._replies[msg_id] = future
        try:
            reply = await asyncio.wait_for(future, COMPLETE_TIMEOUT)
        except TimeoutError:
            return []
        finally:
            self._replies.pop(msg_id, None)
        return [str(m) for m in reply.get("matches") or []]

    # -- the channels ----------------------------------------------------------------
    def _finish_if_done(self, msg_id: str) -> None:
        """A run ends when its reply came and its output is all in (IOPub idle)."""
        if msg_id in self._replied and msg_id in self._idle:
            self._replied.discard(msg_id)
            self._idle.discard(msg_id)
            run = self._runs.pop(msg_id, None)
            if run is not None:
                run.finish(0)

    async def _iopub(self) -> None:
        while True:
            msg = await self.kc.get_iopub_msg()
            parent = (msg.get("parent_header") or {}).get("msg_id", "")
            run = self._runs.get(parent)
            if run is None:
                continue
            if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                self._idle.add(parent)
                self._finish_if_done(parent)
                continue
            for kind, data in console_items(msg["msg_type"], msg["content"]):
                run.add(kind, data)

    async def _shell(self) -> None:
        while True:
            msg = await self.kc.get_shell_msg()
            parent = (msg.get("parent_header") or {}).get("msg_id", "")
            if parent in self._replies:
                if not self._replies[parent].done():
                    self._replies[parent].set_result(msg["content"])
            elif parent in self._runs:
                self._replied.add(parent)
                self._finish_if_done(parent)

    async def _stdin(self) -> None:
        while True:
            msg = await self.kc.get_stdin_msg()
            run = self._runs.get((msg.get("parent_header") or {}).get("msg_id", ""))
            if run is not None and msg["msg_type"] == "input_request":
                run.wait_input(str(msg["content"].get("prompt", "")), bool(msg["content"].get("password")))

    async def _watch(self) -> None:
        """Wait for the interpreter's process to end (in a thread: Popen.wait blocks)."""
        assert self.km is not None and self.km.provisioner is not None
        process = self.km.provisioner.process  # type: ignore[attr-defined]
        code = await asyncio.get_running_loop().run_in_executor(None, process.wait)
        self.alive = False
        await asyncio.sleep(DRAIN_SECONDS)
        out_of_memory = stats.oom_kills(stats.read_files()) > self._oom_kills
        for run in list(self._runs.values()):
            run.add("stderr", death_note(code, out_of_memory))
            run.finish(1)
        self._runs.clear()
        self.on_death(code)
