"""Resumes that share their listings.

An event stream resumed with ``Last-Event-ID`` lists the KernelSessions as they were
at that point (``resourceVersionMatch=Exact``). After an API restart or a network
blip, thousands of EventSources reconnect within seconds, mostly with the same few
ids (the last message each saw was the same broadcast). A listing at an exact
resourceVersion never changes, so concurrent resumes from one point share one call
to the API server, and a finished listing serves the resumes that arrive in the next
few seconds. Failures are not kept: the next resume tries again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

ListAt = Callable[[str], Awaitable[list[dict]]]


class SharedListings:
    def __init__(self, list_at: ListAt, keep_seconds: float = 5.0, keep: int = 4) -> None:
        self.list_at = list_at
        self.keep_seconds = keep_seconds
        self.keep = keep
        self._pending: dict[str, asyncio.Future[list[dict]]] = {}
        self._done: OrderedDict[str, tuple[float, list[dict]]] = OrderedDict()

    async def __call__(self, resource_version: str) -> list[dict]:
        kept = self._done.get(resource_version)
        if kept is not None and time.monotonic() - kept[0] < self.keep_seconds:
            return kept[1]
        pending = self._pending.get(resource_version)
        if pending is None:
            pending = asyncio.ensure_future(self._list(resource_version))
            self._pending[resource_version] = pending
        # shield: one resume giving up (its client left) must not cancel the others' listing
        return await asyncio.shield(pending)

    async def _list(self, resource_version: str) -> list[dict]:
        try:
            items = await self.list_at(resource_version)
        finally:
            self._pending.pop(resource_version, None)
        self._done[resource_version] = (time.monotonic(), items)
        self._done.move_to_end(resource_version)
        while len(self._done) > self.keep:
            self._done.popitem(last=False)
        return items
