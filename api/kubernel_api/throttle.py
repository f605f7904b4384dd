"""A sliding-window limit of attempts per key (pure; the clock is passed in): login
attempts, and failed signatures, per access key and per client address."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Throttle:
    limit: int
    """Attempts allowed per key within ``window_seconds``."""
    window_seconds: float
    max_keys: int = 10_000
    """Keys remembered at most; the least recently seen go first (bounded memory)."""
    _attempts: dict[str, deque[float]] = field(default_factory=dict)

    def attempt(self, key: str, now: float) -> float | None:
        """Count an attempt of ``key`` at ``now``: None if allowed, else the seconds to
        wait before the next one is (Retry-After)."""
        wait = self.wait(key, now)
        if wait is None:
            self.count(key, now)
        return wait

    def wait(self, key: str, now: float) -> float | None:
        """None if ``key`` may make an attempt at ``now``, else the seconds to wait (nothing
        is counted: for limits on failures, counted with ``count`` once one fails)."""
        times = self._attempts.get(key)
        if not times:
            return None
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        if len(times) >= self.limit:
            return max(0.0, times[0] + self.window_seconds - now)
        return None

    def count(self, key: str, now: float) -> None:
        times = self._attempts.pop(key, None) or deque()
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        times.append(now)
        self._attempts[key] = times  # re-inserted: the most recently seen last
        while len(self._attempts) > self.max_keys:
            del self._attempts[next(iter(self._attempts))]


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
