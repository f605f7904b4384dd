"""The API's abuse limits, per process (pure; the clock is passed in): failed signatures
per access key and per address, replayed signatures, request rates per keypair, open
event streams per keypair, restarts per session, and the Host names served
(docs/security.md lists them)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .keypairs import Keypair
from .problems import Problem, ProblemType
from .ratelimit import Rate, RollingRates
from .replay import SeenSignatures
from .settings import ApiSettings
from .throttle import Throttle, retry_after

FAILURE_WINDOW_SECONDS = 60
RESTART_WINDOW_SECONDS = 600


def too_many(detail: str, wait: float, headers: dict[str, str] | None = None) -> Problem:
    return Problem(
        ProblemType.TOO_MANY_REQUESTS, detail, {"Retry-After": retry_after(wait), **(headers or {})}
    )


@dataclass
class Guard:
    settings: ApiSettings
    failures_by_key: Throttle
    failures_by_address: Throttle
    restarts: Throttle
    seen: SeenSignatures
    rates: RollingRates = field(default_factory=RollingRates)
    streams: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, settings: ApiSettings) -> Guard:
        return cls(
            settings,
            Throttle(settings.auth_failures_per_key, FAILURE_WINDOW_SECONDS),
            Throttle(settings.auth_failures_per_address, FAILURE_WINDOW_SECONDS),
            Throttle(settings.restarts_per_session, RESTART_WINDOW_SECONDS),
            # A date may be off by the skew either way: its signature is accepted that long.
            SeenSignatures(2 * settings.clock_skew_seconds, max(1, settings.replay_cache_entries)),
        )

    def serves_host(self, host: str | None) -> bool:
        """Whether ``host`` (a Host header, maybe with a port) is one the API answers to."""
        if not self.settings.allowed_hosts:
            return True
        host = host or ""
        name = host if host.endswith("]") else host.rsplit(":", 1)[0]  # "[::1]" has no port to drop
        return name.lower().rstrip(".") in {h.lower().rstrip(".") for h in self.settings.allowed_hosts}

    def check_failures(self, access_key: str | None, address: str, now: float) -> None:
        """429 while the key or the address has failed too often in the last minute."""
        waits = [self.failures_by_address.wait(address, now)]
        if access_key:
            waits.append(self.failures_by_key.wait(access_key, now))
        longest = max((w for w in waits if w is not None), default=None)
        if longest is not None:
            raise too_many("too many failed signatures; try again later", longest)

    def failed(self, access_key: str | None, address: str, now: float) -> None:
        self.failures_by_address.count(address, now)
        if access_key:
            self.failures_by_key.count(access_key, now)

    def first_use(self, signature: str, now: float) -> bool:
        return self.settings.replay_cache_entries == 0 or self.seen.first_use(signature, now)

    def count_request(self, caller: Keypair, now: float) -> Rate:
        """Count one request of ``caller``; 429 beyond its rate limit."""
        limit = caller.limits.rate_limit or self.settings.rate_limit
        rate = self.rates.hit(caller.access_key, limit, now)
        if rate.retry_after is not None:
            raise too_many(
                f"{limit} requests per {rate.headers()['X-RateLimit-Window']} s",
                rate.retry_after,
                rate.headers(),
            )
        return rate

    def restart(self, session: str, now: float) -> None:
        """Count a restart of ``session``; 429 beyond its allowance per 10 minutes (each restart
        is a new container: a loop of them would churn the node)."""
        wait = self.restarts.attempt(session, now)
        if wait is not None:
            raise too_many(
                f"restarted {self.settings.restarts_per_session} times in {RESTART_WINDOW_SECONDS} s", wait
            )

    @contextmanager
    def stream(self, access_key: str) -> Iterator[None]:
        """Hold one of ``access_key``'s event streams open; 429 beyond its allowance."""
        if self.streams[access_key] >= self.settings.streams_per_keypair:
            raise too_many(
                f"this keypair already has {self.settings.streams_per_keypair} event streams open here",
                self.settings.heartbeat_seconds,
            )
        self.streams[access_key] += 1
        try:
            yield
        finally:
            self.streams[access_key] -= 1
            if not self.streams[access_key]:
                del self.streams[access_key]
