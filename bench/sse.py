"""A lean SSE reader for many concurrent streams: an asyncio Protocol over HTTP/1.0
(no chunked encoding to undo), recording when each lifecycle message arrived."""

from __future__ import annotations

import asyncio
import re
import time
from array import array
from collections.abc import Callable

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
