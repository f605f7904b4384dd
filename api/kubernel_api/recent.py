"""The last lifecycle entries this process saw, step by step of its watch (pure).

A client that reconnects with ``Last-Event-ID`` names a point of the watch: a
resourceVersion it has everything up to, or the first ``skip`` entries of one step
(``base..until#skip``, events.Cursor). When that point is still in this bounded ring,
what the client missed is the rest of the ring from there, with the very bytes the live
stream sent, and no listing at the API server is needed. A point the ring no longer
holds (or never held: another replica's, or a catch-up's) falls back to listing
(listings.SharedListings).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .events import Cursor, Entry


@dataclass(frozen=True)
class Step:
    """One watch step: the entries it brought (maybe none), with their messages."""

    base: str
    until: str
    messages: tuple[tuple[Entry, bytes], ...]


class Recent:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        """Entries kept at most (an empty step counts as one)."""
        self.steps: deque[Step] = deque()
        self._size = 0

    def add(self, base: str, until: str, messages: list[tuple[Entry, bytes]]) -> None:
        if self.max_entries <= 0:
            return
        self.steps.append(Step(base, until, tuple(messages)))
        self._size += max(1, len(messages))
        while self._size > self.max_entries and self.steps:
            self._size -= max(1, len(self.steps.popleft().messages))

    def after(self, cursor: Cursor, current: str) -> list[tuple[Entry, bytes]] | None:
        """What a client at ``cursor`` missed, up to ``current`` (the watch's resourceVersion
        now); None when the ring cannot tell (or keeps nothing: then every resume lists)."""
        if self.max_entries <= 0:
            return None
        steps = list(self.steps)
        if cursor.until is None:
            if cursor.base == current:
                return []
            for i, step in enumerate(steps):
                if step.until == cursor.base:
                    return [m for later in steps[i + 1 :] for m in later.messages]
            return None
        for i, step in enumerate(steps):
            if (step.base, step.until) == (cursor.base, cursor.until) and cursor.skip <= len(step.messages):
                return list(step.messages[cursor.skip :]) + [
                    m for later in steps[i + 1 :] for m in later.messages
                ]
        return None
