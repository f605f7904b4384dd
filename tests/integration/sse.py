"""Reading an SSE stream in the tests (the format as browsers parse it)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Message:
    event: str
    data: dict
    id: str | None
    retry: int | None = None


@dataclass
class EventStream:
    response: aiohttp.ClientResponse
    comments: list[str] = field(default_factory=list)

    async def next(self, timeout: float) -> Message | None:
        """The next message within ``timeout`` seconds, or None when the server ends the stream."""
        async with asyncio.timeout(timeout):
            return await self._next()

    async def comment(self, text: str, timeout: float) -> None:
        """Read until a comment ``text`` arrives; a message before it fails the test."""
        async with asyncio.timeout(timeout):
            while text not in self.comments:
                line = await self.response.content.readline()
                assert line, "the stream ended"
                decoded = line.decode("utf-8").rstrip("\r\n")
                assert not decoded or decoded.startswith(":"), f"unexpected message line {decoded!r}"
                if decoded:
                    self.comments.append(decoded[1:].strip())

    async def _next(self) -> Message | None:
        fields: dict[str, str] = {}
        while True:
            line = await self.response.content.readline()
            if not line:
                return None
            text = line.decode("utf-8").rstrip("\r\n")
            if text.startswith(":"):
                self.comments.append(text[1:].strip())
                continue
            if not text:
                if "data" in fields:
                    return Message(
                        fields.get("event", "message"),
                        json.loads(fields["data"]),
                        fields.get("id"),
                        int(fields["retry"]) if "retry" in fields else None,
                    )
                continue
            name, _, value = text.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value

    async def collect(self, count: int, timeout: float) -> list[Message]:
        got = []
        while len(got) < count:
            message = await self.next(timeout)
            if message is None:
                break
            got.append(message)
        return got
