"""Writing the Hub's subscribers to their HTTP responses, as EventSource and proxies
expect: the SSE headers, `retry:` on the first message, heartbeat comments while
nothing happens, and batched writes under a burst.

One task, the ``Fanout``, writes for every subscriber: it takes what each marked
subscriber has pending and writes it in one piece, then waits at least
``flush_seconds`` before its next pass. Under a burst a pass takes longer and the
batches grow by themselves; no task wakes per client and message, which is what
let 10,000 streams on one process keep up (make bench, docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import Counter

from .events import comment
from .stream import Hub, Sink, Subscriber

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",  # nginx and ingress-nginx: do not buffer this response
}
HEARTBEAT = comment("heartbeat")
YIELD_EVERY = 256
"""Writes between two yields of a pass, so that a pass over thousands of clients does
not hold up the watch and the requests (a write does not wait for its client)."""


@dataclass(frozen=True)
class Pacing:
    retry_ms: int
    """Sent as `retry:` with the first message."""
    heartbeat_seconds: float
    """A comment after this long without a write."""
    flush_seconds: float
    """Shortest time between two passes of the writer (0: as soon as something comes)."""
    buffer_bytes: int
    """Bytes written to a client that its socket has not taken yet; a write that would
    go past this cuts the client off (it resumes with Last-Event-ID)."""


class Fanout:
    """The one writer of every stream of a Hub."""

    def __init__(self, hub: Hub, pacing: Pacing, sent: Counter) -> None:
        self.hub, self.pacing, self.sent = hub, pacing, sent

    async def run(self) -> None:
        hub, pacing = self.hub, self.pacing
        tick = min(max(pacing.heartbeat_seconds / 2, 0.05), 1.0)
        next_heartbeat = time.monotonic() + tick
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hub.wake.wait(), max(0.0, next_heartbeat - time.monotonic()))
            hub.wake.clear()
            if hub.dirty or hub.dirty_groups:
                await self.write_pending()
            if time.monotonic() >= next_heartbeat:
                await self.heartbeats()
                next_heartbeat = time.monotonic() + tick
            if pacing.flush_seconds:
                await asyncio.sleep(pacing.flush_seconds)  # let the next batch gather

    async def write_pending(self) -> None:
        """Groups first, then the subscribers alone; a subscriber alone whose backlog is
        written joins its group here, when the group's pending messages are written too."""
        hub, now, written = self.hub, time.monotonic(), 0
        groups, hub.dirty_groups = hub.dirty_groups, set()
        for group in groups:
            messages, group.pending = group.pending, []
            data = b"".join(messages)
            for count, subscriber in enumerate(list(group.members), 1):
                if count % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                if subscriber.dropped or subscriber.sink is None:
                    continue
                if not await self._write(subscriber, subscriber.sink, data):
                    continue
                subscriber.last_write = now
                written += len(messages)
        marked, hub.dirty = hub.dirty, set()
        for subscriber in marked:
            if subscriber.dropped:
                continue
            if subscriber.sink is None:  # still writing its catch-up: next pass
                hub.dirty.add(subscriber)
                continue
            messages = subscriber.take()
            if messages:
                if not await self._write(subscriber, subscriber.sink, b"".join(messages)):
                    continue
                subscriber.last_write = now
                written += len(messages)
            if subscriber.closing:
                hub.end(subscriber)
            elif not subscriber.floor and not hub.join_group(subscriber):
                hub.dirty.add(subscriber)  # its group had messages pending: next pass
        if written:
            self.sent.inc(written)

    async def _write(self, subscriber: Subscriber, sink: Sink, data: bytes) -> bool:
        """Whether the client took ``data``; one that is gone or too far behind is ended."""
        try:
            if await sink(data):
                return True
            self.hub.drop(subscriber, f"would hold over {self.pacing.buffer_bytes} bytes unsent")
        except ConnectionResetError:
            self.hub.end(subscriber)  # it left: nothing to report
        return False

    async def heartbeats(self) -> None:
        quiet_since = time.monotonic() - self.pacing.heartbeat_seconds
        for subscriber in list(self.hub.subscribers):
            if (
                subscriber.sink is not None
                and not subscriber.dropped
                and subscriber.last_write <= quiet_since
            ):
                try:
                    taken = await subscriber.sink.heartbeat()
                except ConnectionResetError:
                    self.hub.end(subscriber)
                    continue
                if not taken:
                    self.hub.drop(subscriber, f"would hold over {self.pacing.buffer_bytes} bytes unsent")
                    continue
                subscriber.last_write = time.monotonic()


class ResponseSink:
    """Writes to one response without ever waiting for the client: a write that would
    leave more than ``buffer_bytes`` unsent is refused instead, and the transport's
    high-water mark sits above that, so aiohttp's drain never blocks the Fanout."""

    def __init__(self, request: web.Request, response: web.StreamResponse, pacing: Pacing) -> None:
        self.transport, self.response, self.limit = request.transport, response, pacing.buffer_bytes
        if self.transport is not None:
            self.transport.set_write_buffer_limits(high=self.limit + (64 << 10))
        self.prefix = f"retry: {pacing.retry_ms}\n".encode()  # rides on the first message

    async def catch_up(self, messages: list[bytes]) -> None:
        """The first messages, written by the handler itself (waiting for the client
        is fine there, and a long catch-up is not cut off)."""
        await self.response.write(self.prefix + b"".join(messages))
        self.prefix = b""

    async def __call__(self, data: bytes) -> bool:
        data, self.prefix = self.prefix + data, b""
        return await self._write(data)

    async def heartbeat(self) -> bool:
        return await self._write(HEARTBEAT)

    async def _write(self, data: bytes) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client went away")
        if transport.get_write_buffer_size() + len(data) > self.limit:
            return False
        await self.response.write(data)
        return True


async def write_stream(
    request: web.Request, hub: Hub, subscriber: Subscriber, preface: list[bytes], pacing: Pacing
) -> web.StreamResponse:
    """Send the head and ``preface`` (what a resumed client missed), then hand the
    stream to the Fanout until it ends; the subscription ends with it."""
    response = web.StreamResponse(headers=SSE_HEADERS)
    try:
        await response.prepare(request)
        sink = ResponseSink(request, response, pacing)
        await response.write(comment("kubernel event stream"))
        if preface:
            await sink.catch_up(preface)
        subscriber.last_write = time.monotonic()
        subscriber.sink = sink
        hub.mark(subscriber)  # what came during the catch-up
        await subscriber.ended
    except ConnectionResetError:
        pass  # the client went away
    finally:
        hub.close(subscriber)
    return response
