"""The interpreter: an ipykernel started and driven with jupyter_client.

It keeps its state (variables, imports) between executions. Run as the kernel
user when the runner is root; its connection file is that user's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from .results import console_items
from .runs import Run
from .settings import RunnerSettings

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
        self._pending_reply: dict[str, int] = {}  # msg_id -> exit code, until idle
        self._idle: set[str] = set()
        self._tasks: list[asyncio.Task] = []

    async def start(self, environ: dict[str, str]) -> None:
        runtime = Path(tempfile.mkdtemp(prefix="kubernel-kernel-"))
        self.km = _KernelManager(kernel_name="python3", connection_file=str(runtime / "kernel.json"))
        launch: dict[str, Any] = {}
        if self.settings.drops_privileges:
            uid, gid = self.settings.uid, self.settings.gid
            assert uid is not None and gid is not None
            os.chown(runtime, uid, gid)
            self.km.file_owner = (uid, gid)
            launch = {"user": uid, "group": gid, "extra_groups": []}
        env = {**os.environ, **environ, "HOME": str(self.settings.workdir)}
        for name in [n for n in env if n.startswith("KUBERNEL_RUNNER_") or n == "IPYTHONDIR"]:
            del env[name]
        await self.km.start_kernel(env=env, cwd=str(self.settings.workdir), **launch)
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=60)
        self.alive = True
        self._tasks = [asyncio.create_task(loop()) for loop in (self._iopub, self._shell, self._stdin,
                                                                 self._watch)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km is not None:
            with contextlib.suppress(Exception):
                await self.km.shutdown_kernel(now=True)

    # -- requests ------------------------------------------------------------------
    def execute(self, code: str, run: Run) -> None:
        msg_id = self.kc.execute(code, allow_stdin=True, stop_on_error=False)
        self._runs[msg_id] = run

    def send_input(self, text: str) -> None:
        self.kc.input(text)

    async def interrupt(self) -> None:
        assert self.km is not None
        await self.km.interrupt_kernel()

    async def complete(self, code: str, cursor: int) -> list[str]:
        msg_id = self.kc.complete(code, cursor)
        future: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self._replies[msg_id] = future
        try:
            reply = await asyncio.wait_for(future, 10)
        finally:
            self._replies.pop(msg_id, None)
        return list(reply.get("matches") or [])

    # -- the channels ----------------------------------------------------------------
    def _finish_if_done(self, msg_id: str) -> None:
        """A run ends when its reply came and its output is all in (IOPub idle)."""
        if msg_id in self._pending_reply and msg_id in self._idle:
            run = self._runs.pop(msg_id)
            self._idle.discard(msg_id)
            run.finish(self._pending_reply.pop(msg_id))

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
                self._replies[parent].set_result(msg["content"])
            elif parent in self._runs:
                self._pending_reply[parent] = 0 if msg["content"].get("status") == "ok" else 1
                self._finish_if_done(parent)

    async def _stdin(self) -> None:
        while True:
            msg = await self.kc.get_stdin_msg()
            run = self._runs.get((msg.get("parent_header") or {}).get("msg_id", ""))
            if run is not None and msg["msg_type"] == "input_request":
                run.wait_input(msg["content"].get("prompt", ""), bool(msg["content"].get("password")))

    async def _watch(self) -> None:
        """Wait for the interpreter's process to end (in a thread: Popen.wait blocks)."""
        assert self.km is not None and self.km.provisioner is not None
        process = self.km.provisioner.process  # type: ignore[attr-defined]
        code = await asyncio.get_running_loop().run_in_executor(None, process.wait)
        self.alive = False
        for run in list(self._runs.values()):
            run.add("stderr", f"\n[the kernel died (exit status {code}): its state is gone]\n")
            run.finish(1)
        self._runs.clear()
        self.on_death(code)
