"""The SSE hub: one KernelSession watch feeds every subscriber of this process.

Each lifecycle entry becomes one encoded message, shared by all subscribers
whose filter matches. A subscriber has a bounded queue; one that falls too
far behind is disconnected (it can resume with Last-Event-ID), so a client
that never reads cannot grow the server's memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .access import can_see
from .events import Cursor, Entry, comment, entries_after, ids_for, last_seqs, message
from .informer import Change, Informer
from .keypairs import Keypair
from .kube import Gone
from .metrics import Metrics

log = logging.getLogger("kubernel.api.stream")
CLOSE = b""  # queued to end a stream


@dataclass(frozen=True)
class StreamFilter:
    """What one subscriber sees: its role's share, narrowed by the query."""

    caller: Keypair
    session_id: str | None = None  # None: every session
    owner_access_key: str | None = None
    group: str | None = None

    def matches(self, entry: Entry) -> bool:
        return (
            can_see(self.caller, entry.owner_access_key, entry.owner_domain)
            and (self.session_id is None or entry.session_id == self.session_id)
            and (self.owner_access_key is None or entry.owner_access_key == self.owner_access_key)
            and (self.group is None or entry.group == self.group)
        )


@dataclass(eq=False)
class Subscriber:
    filter: StreamFilter
    queue: asyncio.Queue[bytes]
    # Entries a resumed client already has but this process has not seen yet (uid -> seq).
    floor: dict[str, int] = field(default_factory=dict)
    dropped: bool = False

    def offer(self, entry: Entry, encoded: bytes) -> bool:
        if self.floor and entry.seq <= self.floor.get(entry.uid, 0):
            return True
        try:
            self.queue.put_nowait(encoded)
            return True
        except asyncio.QueueFull:
            return False


class Hub:
    def __init__(self, informer: Informer, metrics: Metrics, queue_size: int) -> None:
        self.informer = informer
        self.metrics = metrics
        self.queue_size = queue_size
        self.subscribers: set[Subscriber] = set()

    # -- fed by the informer ----------------------------------------------------
    def on_change(self, previous: str, resource_version: str, changes: list[Change]) -> None:
        if not previous:  # the first listing: history, not news
            return
        before = last_seqs(old for old, _ in changes if old is not None)
        entries = entries_after(before, [new for _, new in changes if new is not None])
        received = time.time()
        for entry in entries:
            self.metrics.entry_lag.observe(max(0.0, received - entry.time.timestamp()))
        if not entries or not self.subscribers:
            return
        for entry, message_id in zip(entries, ids_for(previous, resource_version, len(entries)), strict=True):
            encoded = message(entry, message_id)
            for subscriber in list(self.subscribers):
                if (
                    not subscriber.dropped
                    and subscriber.filter.matches(entry)
                    and not subscriber.offer(entry, encoded)
                ):
                    self._drop(subscriber)

    def _drop(self, subscriber: Subscriber) -> None:
        self.metrics.dropped_streams.inc()
        log.warning(
            "SSE client of %s fell %d messages behind; disconnecting it",
            subscriber.filter.caller.access_key,
            self.queue_size,
        )
        self._end(subscriber)

    @staticmethod
    def _end(subscriber: Subscriber) -> None:
        """Close a stream now: its backlog is freed (a client resumes with Last-Event-ID)."""
        subscriber.dropped = True
        while not subscriber.queue.empty():
            subscriber.queue.get_nowait()
        subscriber.queue.put_nowait(CLOSE)

    # -- subscribers ---------------------------------------------------------------
    async def open(
        self,
        stream_filter: StreamFilter,
        cursor: Cursor | None,
        sessions_at: Callable[[str], Awaitable[list[dict]]],
    ) -> tuple[list[bytes], Subscriber]:
        """Subscribe; returns what the client missed since ``cursor`` and the live subscription."""
        await self.informer.loaded
        preface: list[bytes] = []
        base_state: list[dict] | None = None
        base_rv = ""
        if cursor is not None:
            try:
                if cursor.until is not None:
                    before, base_state = await sessions_at(cursor.base), await sessions_at(cursor.until)
                    delta = entries_after(last_seqs(before), base_state)
                    ids = ids_for(cursor.base, cursor.until, len(delta))
                    preface += [
                        message(e, i)
                        for k, (e, i) in enumerate(zip(delta, ids, strict=True))
                        if k >= cursor.skip and stream_filter.matches(e)
                    ]
                    base_rv = cursor.until
                else:
                    base_state, base_rv = await sessions_at(cursor.base), cursor.base
            except Gone:
                preface.append(
                    comment("the resume point is no longer in the API server's history; continuing from now")
                )
                base_state = None
        # From here on nothing awaits: the snapshot and the subscription are taken at
        # the same point of the watch, so nothing falls between them.
        subscriber = Subscriber(stream_filter, asyncio.Queue(self.queue_size))
        if base_state is not None:
            current = list(self.informer.cache.values())
            delta = entries_after(last_seqs(base_state), current)
            ids = ids_for(base_rv, self.informer.resource_version, len(delta))
            preface += [message(e, i) for e, i in zip(delta, ids, strict=True) if stream_filter.matches(e)]
            now_seqs = last_seqs(current)
            subscriber.floor = {
                uid: seq for uid, seq in last_seqs(base_state).items() if seq > now_seqs.get(uid, 0)
            }
        self.subscribers.add(subscriber)
        self.metrics.open_streams.inc()
        return preface, subscriber

    def close(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.discard(subscriber)
            self.metrics.open_streams.dec()

    def revoke(self, access_keys: set[str]) -> None:
        """End the streams authenticated as ``access_keys`` (deleted, deactivated, role
        changed): what a stream may carry was decided when it opened."""
        for subscriber in list(self.subscribers):
            if subscriber.filter.caller.access_key in access_keys and not subscriber.dropped:
                self._end(subscriber)
                log.info(
                    "closing an event stream of %s: its keypair changed", subscriber.filter.caller.access_key
                )

    def shutdown(self) -> None:
        """End every open stream (server shutdown)."""
        for subscriber in list(self.subscribers):
            if not subscriber.dropped:
                try:
                    subscriber.queue.put_nowait(CLOSE)
                except asyncio.QueueFull:
                    self._drop(subscriber)
