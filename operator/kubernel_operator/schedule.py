"""One schedule of deadlines for every session, ordered by the next one: the start
deadline, the idle timeout, the end of retention, and the retry of a failed action.

Each session has at most one entry, re-armed by the events that move its deadline
(``arm`` replaces the previous one). One task sleeps until the earliest entry, so an
idle session costs nothing until its deadline: the operator's idle CPU does not grow
with the number of sessions (issue #17; it was one kopf timer per session).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

Key = tuple[str, str]
log = logging.getLogger("kubernel.operator")


class Schedule:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Key]] = []
        self._when: dict[Key, tuple[float, int]] = {}  # the live entry of each key
        self._order = itertools.count()
        self._changed = asyncio.Event()

    def arm(self, key: Key, when: datetime | None) -> None:
        """``key`` is due at ``when`` (None: never), replacing its earlier deadline."""
        if when is None:
            self.disarm(key)
            return
        entry = (when.timestamp(), next(self._order))
        self._when[key] = entry
        heapq.heappush(self._heap, (*entry, key))
        if self._heap[0][2] == key:
            self._changed.set()  # an earlier deadline than the task sleeps towards

    def disarm(self, key: Key) -> None:
        self._when.pop(key, None)  # its heap entries are skipped when they come up

    def when(self, key: Key) -> datetime | None:
        entry = self._when.get(key)
        return datetime.fromtimestamp(entry[0], UTC) if entry else None

    def __len__(self) -> int:
        return len(self._when)

    def pop_due(self, now: float) -> list[Key]:
        """The keys due at ``now``, removed from the schedule."""
        due = []
        while self._heap and self._heap[0][0] <= now:
            at, order, key = heapq.heappop(self._heap)
            if self._when.get(key) == (at, order):
                del self._when[key]
                due.append(key)
        self._drop_stale_head()
        return due

    def next_at(self) -> float | None:
        self._drop_stale_head()
        return self._heap[0][0] if self._heap else None

    def _drop_stale_head(self) -> None:
        while self._heap and self._when.get(self._heap[0][2]) != self._heap[0][:2]:
            heapq.heappop(self._heap)

    async def run(self, fire: Callable[[Key], Awaitable[None]]) -> None:
        """Fire each key when it is due, for ever; ``fire`` re-arms what it needs."""
        tasks: set[asyncio.Task[None]] = set()
        while True:
            self._changed.clear()
            now = datetime.now(UTC).timestamp()
            for key in self.pop_due(now):
                task = asyncio.create_task(self._fire(fire, key), name=f"deadline {key[0]}/{key[1]}")
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            at = self.next_at()
            timeout = None if at is None else max(0.0, at - datetime.now(UTC).timestamp())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    @staticmethod
    async def _fire(fire: Callable[[Key], Awaitable[None]], key: Key) -> None:
        try:
            await fire(key)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("deadline of %s/%s failed", *key)
