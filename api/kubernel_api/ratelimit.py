"""Request rates per keypair, as Backend.AI counts them (pure; the clock is passed in).

Backend.AI's manager counts each keypair's requests in a rolling 15-minute window,
answers 429 beyond the keypair's ``rate_limit``, and tells every answer where the
caller stands in ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
``X-RateLimit-Window``. Here the window is kept in one-minute buckets, so a key
costs at most 15 small counters, and the keys are bounded too.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW_SECONDS = 15 * 60
"""Backend.AI's rolling window (``X-RateLimit-Window``)."""
BUCKET_SECONDS = 60


@dataclass(frozen=True)
class Rate:
    """Where a key stands after a request: its limit, its requests in the window (this
    one counted when allowed), and when a refused request may be made again."""

    limit: int
    used: int
    retry_after: float | None = None  # set when refused

    @property
    def allowed(self) -> bool:
        return self.retry_after is None

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - self.used)),
            "X-RateLimit-Window": str(WINDOW_SECONDS),
        }


@dataclass
class RollingRates:
    """Requests per key in the last ``WINDOW_SECONDS``, in ``BUCKET_SECONDS`` buckets."""

    max_keys: int = 100_000
    """Keys remembered at most; the least recently seen go first (bounded memory)."""
    _buckets: dict[str, deque[list[int]]] = field(default_factory=dict)

    def hit(self, key: str, limit: int, now: float) -> Rate:
        """Count a request of ``key`` at ``now`` unless it is over ``limit``."""
        bucket = int(now // BUCKET_SECONDS) * BUCKET_SECONDS
        buckets = self._buckets.pop(key, None) or deque()
        while buckets and buckets[0][0] <= bucket - WINDOW_SECONDS:
            buckets.popleft()
        self._buckets[key] = buckets  # re-inserted: the most recently seen last
        while len(self._buckets) > self.max_keys:
            del self._buckets[next(iter(self._buckets))]
        used = sum(count for _, count in buckets)
        if used >= limit:
            # The oldest bucket's requests leave the window when it ends.
            oldest = buckets[0][0] if buckets else bucket
            return Rate(limit, used, max(1.0, oldest + WINDOW_SECONDS - now))
        if buckets and buckets[-1][0] == bucket:
            buckets[-1][1] += 1
        else:
            buckets.append([bucket, 1])
        return Rate(limit, used + 1)
