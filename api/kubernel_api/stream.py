"""The SSE hub: one KernelSession watch feeds every subscriber of this process.

Each lifecycle entry becomes one encoded message, shared by all subscribers
whose filter matches, and is left for the next pass of the one writer
(``sse.Fanout``): no task wakes per subscriber and message.

Subscribers with the same filter (the same keypair and query) form a ``Group``:
an entry is matched once per group and appended once to the group's pending
messages, which the writer joins once and writes to every member. A subscriber
starts alone, with pending messages of its own, while its catch-up is written
(and for good when it resumed with entries this process has not seen yet); it
joins its group at a pass boundary, when neither has anything pending.

A client that falls too far behind (``queue_size`` messages alone, or the
writer's byte limit) is disconnected and resumes with Last-Event-ID, so a
client that never reads cannot grow the server's memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from .access import can_see
from .events import Cursor, Entry, comment, entries_after, ids_for, last_seqs, message
from .informer import Change, Informer
from .keypairs import Keypair
from .kube import Gone
from .metrics import Metrics
from .recent import Recent

log = logging.getLogger("kubernel.api.stream")


class Sink(Protocol):
    """Writes to one client; False when it cannot take more (too far behind), and
    ConnectionResetError when it is gone."""

    async def __call__(self, data: bytes) -> bool: ...

    async def heartbeat(self) -> bool: ...


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
    limit: int
    """Most messages held for this client between two writes."""
    ended: asyncio.Future[None]
    """Done when the stream must end (dropped, revoked, server shutdown)."""
    # Entries a resumed client already has but this process has not seen yet (uid -> seq).
    floor: dict[str, int] = field(default_factory=dict)
    pending: list[bytes] = field(default_factory=list)
    sink: Sink | None = None
    """Set once the response's head and catch-up are written: from then on the writer owns it."""
    closing: bool = False
    """End once the pending messages are written (server shutdown)."""
    dropped: bool = False
    last_write: float = 0.0  # time.monotonic() of the last write (heartbeats)
    group: Group | None = None

    def offer(self, entry: Entry, encoded: bytes) -> bool:
        if self.floor and entry.seq <= self.floor.get(entry.uid, 0):
            return True
        if len(self.pending) >= self.limit:
            return False
        self.pending.append(encoded)
        return True

    def take(self) -> list[bytes]:
        taken, self.pending = self.pending, []
        return taken


@dataclass(eq=False)
class Group:
    """The subscribers of one filter: sent the same bytes."""

    filter: StreamFilter
    members: set[Subscriber] = field(default_factory=set)
    pending: list[bytes] = field(default_factory=list)


class Hub:
    def __init__(
        self, informer: Informer, metrics: Metrics, queue_size: int, recent: Recent | None = None
    ) -> None:
        self.informer = informer
        self.metrics = metrics
        self.queue_size = queue_size
        self.recent = recent or Recent(0)
        """The last entries seen: a resume inside it is served without a listing."""
        self.subscribers: set[Subscriber] = set()
        self.alone: set[Subscriber] = set()
        """Subscribers not (yet) in a group: matched one by one."""
        self.groups: dict[StreamFilter, Group] = {}
        self.dirty: set[Subscriber] = set()
        """Subscribers with something of their own to write (messages, or an end)."""
        self.dirty_groups: set[Group] = set()
        self.wake = asyncio.Event()
        """Set when something is left to write: the writer's signal."""

    def mark(self, subscriber: Subscriber) -> None:
        self.dirty.add(subscriber)
        self.wake.set()

    # -- fed by the informer ----------------------------------------------------
    def on_change(self, previous: str, resource_version: str, changes: list[Change]) -> None:
        if not previous:  # the first listing: history, not news
            return
        before = last_seqs(old for old, _ in changes if old is not None)
        entries = entries_after(before, [new for _, new in changes if new is not None])
        received = time.time()
        for entry in entries:
            self.metrics.entry_lag.observe(max(0.0, received - entry.time.timestamp()))
        ids = ids_for(previous, resource_version, len(entries))
        messages = [
            (entry, message(entry, message_id)) for entry, message_id in zip(entries, ids, strict=True)
        ]
        self.recent.add(previous, resource_version, messages)
        if not entries or not self.subscribers:
            return
        for entry, encoded in messages:
            for group in self.groups.values():
                if group.filter.matches(entry):
                    group.pending.append(encoded)
                    self.dirty_groups.add(group)
            for subscriber in self.alone:
                if subscriber.dropped or not subscriber.filter.matches(entry):
                    continue
                if subscriber.offer(entry, encoded):
                    self.dirty.add(subscriber)
                else:
                    self.drop(subscriber, f"fell {self.queue_size} messages behind")
        if self.dirty or self.dirty_groups:
            self.wake.set()

    def join_group(self, subscriber: Subscriber) -> bool:
        """Move a subscriber that has nothing pending into its filter's group, if the
        group has nothing pending either (between two passes of the writer); else it
        stays alone until a later pass."""
        if subscriber.group or subscriber.floor or subscriber.pending or subscriber.sink is None:
            return subscriber.group is not None
        group = self.groups.get(subscriber.filter)
        if group is None:
            group = self.groups[subscriber.filter] = Group(subscriber.filter)
        elif group.pending:
            return False
        self.alone.discard(subscriber)
        group.members.add(subscriber)
        subscriber.group = group
        return True

    def drop(self, subscriber: Subscriber, why: str) -> None:
        """Cut a client off that cannot keep up; it resumes with Last-Event-ID."""
        self.metrics.dropped_streams.inc()
        log.warning("SSE client of %s %s; disconnecting it", subscriber.filter.caller.access_key, why)
        self.end(subscriber)

    def end(self, subscriber: Subscriber) -> None:
        """Close a stream now: its backlog is freed."""
        subscriber.dropped = True
        subscriber.pending = []
        self.dirty.discard(subscriber)
        if not subscriber.ended.done():
            subscriber.ended.set_result(None)

    # -- subscribers ---------------------------------------------------------------
    async def open(
        self,
        stream_filter: StreamFilter,
        cursor: Cursor | None,
        sessions_at: Callable[[str], Awaitable[list[dict]]],
    ) -> tuple[list[bytes], Subscriber]:
        """Subscribe; returns what the client missed since ``cursor`` and the live subscription."""
        await self.informer.loaded
        if cursor is not None:
            missed = self.recent.after(cursor, self.informer.resource_version)
            if missed is not None:  # the ring has it: no listing, and nothing awaits before subscribing
                self.metrics.resumes.labels("memory").inc()
                return [m for e, m in missed if stream_filter.matches(e)], self._subscribe(stream_filter)
            self.metrics.resumes.labels("listing").inc()
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
        subscriber = self._subscribe(stream_filter)
        if base_state is not None:
            current = list(self.informer.cache.values())
            delta = entries_after(last_seqs(base_state), current)
            ids = ids_for(base_rv, self.informer.resource_version, len(delta))
            preface += [message(e, i) for e, i in zip(delta, ids, strict=True) if stream_filter.matches(e)]
            now_seqs = last_seqs(current)
            subscriber.floor = {
                uid: seq for uid, seq in last_seqs(base_state).items() if seq > now_seqs.get(uid, 0)
            }
        return preface, subscriber

    def _subscribe(self, stream_filter: StreamFilter) -> Subscriber:
        subscriber = Subscriber(stream_filter, self.queue_size, asyncio.get_running_loop().create_future())
        self.subscribers.add(subscriber)
        self.alone.add(subscriber)
        self.metrics.open_streams.inc()
        return subscriber

    def close(self, subscriber: Subscriber) -> None:
        self.dirty.discard(subscriber)
        self.alone.discard(subscriber)
        if (group := subscriber.group) is not None:
            group.members.discard(subscriber)
            if not group.members:
                self.groups.pop(group.filter, None)
                self.dirty_groups.discard(group)
        if subscriber in self.subscribers:
            self.subscribers.discard(subscriber)
            self.metrics.open_streams.dec()

    def revoke(self, access_keys: set[str]) -> None:
        """End the streams authenticated as ``access_keys`` (deleted, deactivated, role
        changed): what a stream may carry was decided when it opened."""
        for subscriber in list(self.subscribers):
            if subscriber.filter.caller.access_key in access_keys and not subscriber.dropped:
                self.end(subscriber)
                log.info(
                    "closing an event stream of %s: its keypair changed", subscriber.filter.caller.access_key
                )

    def shutdown(self) -> None:
        """End every open stream once what it has pending is written (server shutdown)."""
        for subscriber in list(self.subscribers):
            if not subscriber.dropped:
                subscriber.closing = True
                self.mark(subscriber)
