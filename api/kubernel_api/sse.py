"""Writing one subscriber of the Hub to its HTTP response, as EventSource and proxies
expect: the SSE headers, `retry:` on the first message, heartbeat comments while
nothing happens, and batched writes under a burst."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import Counter

from .events import comment
from .stream import CLOSE, Hub, Subscriber

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",  # nginx and ingress-nginx: do not buffer this response
}


@dataclass(frozen=True)
class Pacing:
    retry_ms: int
    """Sent as `retry:` with the first message."""
    heartbeat_seconds: float
    """A comment after this long without a message."""
    flush_seconds: float
    """Shortest time between two writes to one client (0: each as it comes)."""


async def write_stream(
    request: web.Request,
    hub: Hub,
    subscriber: Subscriber,
    preface: list[bytes],
    pacing: Pacing,
    sent: Counter,
) -> web.StreamResponse:
    """Send ``preface`` then what ``subscriber`` receives until the client leaves or the
    Hub closes the stream; the subscription ends with it."""
    response = web.StreamResponse(headers=SSE_HEADERS)
    # `retry:` rides on the first message: alone it would make an empty message for
    # parsers like the reference client's.
    prefix = f"retry: {pacing.retry_ms}\n".encode()

    async def send(messages: list[bytes]) -> None:
        nonlocal prefix
        await response.write(prefix + b"".join(messages))
        prefix = b""
        sent.inc(len(messages))

    try:
        await response.prepare(request)
        await response.write(comment("kubernel event stream"))
        if preface:
            await send(preface)
        while True:
            if subscriber.queue.empty():
                try:
                    first = await asyncio.wait_for(subscriber.queue.get(), pacing.heartbeat_seconds)
                except TimeoutError:
                    await response.write(comment("heartbeat"))
                    continue
            else:
                first = subscriber.queue.get_nowait()
            # Whatever else is queued goes out in the same write, and a client gets at
            # most one write per flush interval: under a burst this turns thousands of
            # small writes per client into a few (make bench).
            batch = [first]
            while batch[-1] != CLOSE and not subscriber.queue.empty():
                batch.append(subscriber.queue.get_nowait())
            closing = batch[-1] == CLOSE
            messages = batch[:-1] if closing else batch
            if messages:
                await send(messages)
            if closing:
                break
            if messages and pacing.flush_seconds:
                await asyncio.sleep(pacing.flush_seconds)  # let the next batch gather
    except ConnectionResetError:
        pass  # the client went away
    finally:
        hub.close(subscriber)
    return response
