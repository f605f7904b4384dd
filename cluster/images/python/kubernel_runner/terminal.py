"""A shell in a pseudo-terminal, as the kernel user, for ``/pty`` (19.09's protocol:
the client sends JSON ``{"type": "stdin", "chars": <base64>}``, ``resize``, ``ping``,
``restart``; the terminal's output goes back as text)."""

from __future__ import annotations

import asyncio
import base64
import codecs
import fcntl
import os
import pty
import struct
import termios
from collections.abc import Awaitable, Callable
from typing import Any

from .settings import RunnerSettings

SHELLS = ("/bin/bash", "/bin/sh")


def _controlling_tty() -> None:  # in the child, after setsid: the pty becomes its terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    def __init__(self, settings: RunnerSettings, env: dict[str, str], send: Callable[[str], Awaitable[None]]) -> None:
        self.settings = settings
        self.env = {**env, "TERM": "xterm-256color", "HOME": str(settings.workdir)}
        self.send = send
        self.master = -1
        self.process: asyncio.subprocess.Process | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._output: asyncio.Queue[bytes] = asyncio.Queue()
        self._pump: asyncio.Task | None = None

    async def start(self) -> None:
        self.master, slave = pty.openpty()
        drop: dict[str, Any] = {}
        if self.settings.drops_privileges:
            drop = {"user": self.settings.uid, "group": self.settings.gid, "extra_groups": []}
        shell = next(s for s in SHELLS if os.path.exists(s))
        self.process = await asyncio.create_subprocess_exec(
            shell, "-i", stdin=slave, stdout=slave, stderr=slave, cwd=self.settings.workdir, env=self.env,
            start_new_session=True, preexec_fn=_controlling_tty, **drop)
        os.close(slave)
        os.set_blocking(self.master, False)
        asyncio.get_running_loop().add_reader(self.master, self._readable)
        self._pump = asyncio.create_task(self._forward())

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 1 << 16)
        except OSError:  # EIO: the shell is gone
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
        self._output.put_nowait(data)

    async def _forward(self) -> None:
        while data := await self._output.get():
            await self.send(self._decoder.decode(data))

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "stdin":
            os.write(self.master, base64.b64decode(str(message.get("chars", ""))))
        elif kind == "resize":
            size = struct.pack("HHHH", int(message.get("rows", 24)), int(message.get("cols", 80)), 0, 0)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)
        elif kind == "restart":
            await self.stop()
            await self.start()

    async def stop(self) -> None:
        if self.master >= 0:
            asyncio.get_running_loop().remove_reader(self.master)
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._pump is not None:
            self._pump.cancel()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
