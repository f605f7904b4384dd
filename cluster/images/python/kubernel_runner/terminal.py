"""A shell in a pseudo-terminal, as the kernel user in the working directory, for ``/pty``.

19.09's protocol (its manager's gateway/stream.py, docs/runner.md), JSON text frames:
the client sends ``{"type": "stdin", "chars": <base64>}``, ``{"type": "resize", "rows",
"cols"}``, ``{"type": "ping"}`` and ``{"type": "restart"}``; the server sends the terminal's
output as ``{"type": "out", "data": <base64>}`` and trouble as ``{"type": "error", "data":
<text>}``. ``restart`` starts a new shell (19.09 restarted the whole session). When the
shell ends, the websocket closes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import struct
import termios
from collections.abc import Awaitable, Callable
from typing import Any

from .settings import RunnerSettings

SHELLS = ("/bin/bash", "/bin/sh")
READ_SIZE = 1 << 16


def out_frame(data: bytes) -> str:
    return json.dumps({"type": "out", "data": base64.b64encode(data).decode("ascii")})


def error_frame(text: str) -> str:
    return json.dumps({"type": "error", "data": text})


def parse_frame(text: str) -> tuple[str, Any]:
    """A client frame -> (kind, argument) (pure): ("stdin", bytes), ("resize", (rows, cols)),
    ("ping", None), ("restart", None). Raises ValueError for anything else."""
    message = json.loads(text)
    if not isinstance(message, dict):
        raise ValueError("a frame is a JSON object")
    kind = message.get("type")
    if kind == "stdin":
        try:
            return kind, base64.b64decode(str(message.get("chars", "")), validate=True)
        except binascii.Error:
            raise ValueError("stdin chars must be base64") from None
    if kind == "resize":
        rows, cols = message.get("rows"), message.get("cols")
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 1 << 16 for v in (rows, cols)):
            raise ValueError("resize needs rows and cols between 1 and 65535")
        return kind, (rows, cols)
    if kind in ("ping", "restart"):
        return kind, None
    raise ValueError(f"unknown frame type {kind!r}")


def _controlling_tty() -> None:  # in the child, after setsid: the pty becomes its terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    def __init__(
        self, settings: RunnerSettings, env: dict[str, str], send: Callable[[str], Awaitable[None]]
    ) -> None:
        self.settings = settings
        self.env = {**env, "TERM": "xterm-256color"}
        self.send = send
        self.master = -1
        self.process: asyncio.subprocess.Process | None = None
        self.ended = asyncio.Event()
        self._output: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)
        self._pump: asyncio.Task | None = None

    async def start(self) -> None:
        self.ended.clear()
        self.master, slave = pty.openpty()
        drop: dict[str, Any] = {}
        if self.settings.drops_privileges:
            drop = {"user": self.settings.uid, "group": self.settings.gid, "extra_groups": []}
        shell = next(s for s in SHELLS if os.path.exists(s))
        try:
            self.process = await asyncio.create_subprocess_exec(
                shell,
                "-i",
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=self.settings.workdir,
                env=self.env,
                start_new_session=True,
                preexec_fn=_controlling_tty,
                **drop,
            )
        finally:
            os.close(slave)
        os.set_blocking(self.master, False)
        self._pump = asyncio.create_task(self._forward(self.master))
        asyncio.get_running_loop().add_reader(self.master, self._readable, self.master)

    def _readable(self, master: int) -> None:
        if self._output.full():  # the websocket is slow: stop reading until it catches up
            asyncio.get_running_loop().remove_reader(master)
            asyncio.get_running_loop().create_task(self._resume_reading(master))
            return
        try:
            data = os.read(master, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:  # EIO: the shell and everything on the terminal are gone
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(master)
        self._output.put_nowait(data)

    async def _resume_reading(self, master: int) -> None:
        await self._output.join()
        if master == self.master:
            asyncio.get_running_loop().add_reader(master, self._readable, master)

    async def _forward(self, master: int) -> None:
        while True:
            data = await self._output.get()
            self._output.task_done()
            if not data:
                break
            await self.send(out_frame(data))
        if master == self.master:
            self.ended.set()

    async def handle(self, kind: str, argument: Any) -> None:
        if kind == "stdin":
            await asyncio.get_running_loop().run_in_executor(None, self._write, self.master, argument)
        elif kind == "resize":
            rows, cols = argument
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        elif kind == "restart":
            await self.stop()
            await self.start()

    @staticmethod
    def _write(master: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(master, view) :]
            except BlockingIOError:
                select.select([], [master], [], 1.0)  # the terminal's input buffer is full

    async def stop(self) -> None:
        master, self.master = self.master, -1
        if master >= 0:
            asyncio.get_running_loop().remove_reader(master)
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGHUP)  # the shell's session: what it started too
                self.process.kill()
            await self.process.wait()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        self._output = asyncio.Queue(maxsize=64)
        if master >= 0:
            os.close(master)
