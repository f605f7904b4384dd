"""The bench's SSE subscribers: a lean asyncio reader for a few streams (HTTP/1.0, no
chunked encoding to undo), and a compiled load client for thousands."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import time
from array import array
from collections.abc import Callable
from pathlib import Path

_SESSION = re.compile(rb'"sessionId":"([^"]*)"')


class Keys:
    """(sessionId, event) <-> small integers, shared by all readers."""

    def __init__(self) -> None:
        self.ids: dict[tuple[bytes, bytes], int] = {}
        self.names: list[tuple[bytes, bytes]] = []

    def id(self, key: tuple[bytes, bytes]) -> int:
        found = self.ids.get(key)
        if found is None:
            found = self.ids[key] = len(self.names)
            self.names.append(key)
        return found


class StreamReader(asyncio.Protocol):
    """One subscriber: arrival time (wall clock) and key of every lifecycle message."""

    def __init__(
        self, request: bytes, keys: Keys, on_message: Callable[[bytes, bytes, float], None] | None = None
    ):
        self.request, self.keys, self.on_message = request, keys, on_message
        self.times = array("d")
        self.key_ids = array("i")
        self.buffer = b""
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._in_body = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buffer += data
        if not self._in_body:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            status = head.split(b" ", 2)[1]
            if status != b"200":
                if not self.opened.done():
                    self.opened.set_exception(RuntimeError(f"stream answered {head[:200]!r}"))
                return
            self._in_body, self.buffer = True, rest
            if not self.opened.done():
                self.opened.set_result(None)
        *messages, self.buffer = self.buffer.split(b"\n\n")
        for message in messages:
            if not message.startswith(b"id:"):
                continue  # comments (heartbeats) and the retry line
            event = message.split(b"\nevent: ", 1)[1].split(b"\n", 1)[0]
            session = _SESSION.search(message)[1]
            self.times.append(now)
            self.key_ids.append(self.keys.id((session, event)))
            if self.on_message:
                self.on_message(session, event, now)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the stream opened"))
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.transport:
            self.transport.close()


SSELOAD_SOURCE = Path(__file__).parent / "sseload"


def build_sseload(into: Path) -> Path:
    """Build the compiled subscriber (Go, standard library only) once per source change."""
    binary = into / "sseload"
    newest = max(p.stat().st_mtime for p in SSELOAD_SOURCE.iterdir())
    if not binary.exists() or binary.stat().st_mtime < newest:
        subprocess.run(["go", "build", "-o", str(binary), "."], cwd=SSELOAD_SOURCE, check=True)
    return binary


class LoadClient:
    """Many SSE subscribers in one compiled process (bench/sseload/main.go), so that
    what the fan-out figures measure is the server, not a Python reader per stream."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def open(cls, binary: Path, address: str, heads: list[bytes], work: Path) -> LoadClient:
        """One stream per signed head: a signature is good once (the API's replay cache)."""
        (work / "sseload.head").write_bytes(b"".join(heads))
        count = len(heads)
        process = await asyncio.create_subprocess_exec(
            str(binary),
            "-addr",
            address,
            "-n",
            str(count),
            "-head",
            str(work / "sseload.head"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        client = cls(process)
        opened = await asyncio.wait_for(client._answer(), 300)
        if opened.get("event") != "open":
            raise RuntimeError(f"sseload: {opened}")
        return client

    async def _answer(self) -> dict:
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"sseload ended (exit {await self.process.wait()})")
        return json.loads(line)

    async def _ask(self, command: dict, timeout: float) -> dict:
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()
        return await asyncio.wait_for(self._answer(), timeout)

    async def wait(self, keys: list[str], timeout: float) -> dict:
        """Until every subscriber has received every ``"<sessionId> <event>"``."""
        return await self._ask({"cmd": "wait", "keys": keys, "timeout": timeout}, timeout + 30)

    async def delays(self, recorded: dict[str, float]) -> dict:
        """Delivery delays (ms) of every message whose key has a recorded time."""
        return await self._ask({"cmd": "delays", "recorded": recorded}, 120)

    async def close(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.process.stdin.write(b'{"cmd":"close"}\n')
                await self.process.stdin.drain()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
