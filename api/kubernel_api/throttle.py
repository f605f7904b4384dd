"""A sliding-window limit of attempts per key (pure; the clock is passed in): login
attempts per access key and per client address."""

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
        times = self._attempts.pop(key, None) or deque()
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        self._attempts[key] = times  # re-inserted: the most recently seen last
        if len(times) >= self.limit:
            return max(0.0, times[0] + self.window_seconds - now)
        times.append(now)
        while len(self._attempts) > self.max_keys:
            del self._attempts[next(iter(self._attempts))]
        return None


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
