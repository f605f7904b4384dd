"""Request rates per keypair (Backend.AI's X-RateLimit-*) and failure throttles: pure, with a given clock."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import SecretBytes

from kubernel_api.guard import Guard
from kubernel_api.holdings import Holdings, Usage, beyond_totals
from kubernel_api.limits import Limits
from kubernel_api.ratelimit import WINDOW_SECONDS, Rate, RollingRates
from kubernel_api.settings import ApiSettings
from kubernel_api.throttle import Throttle


def test_a_key_gets_its_limit_per_window_and_then_429_with_when_to_retry() -> None:
    rates = RollingRates()
    answers = [rates.hit("AK", 3, now=1000.0 + i) for i in range(4)]
    assert [a.allowed for a in answers] == [True, True, True, False]
    assert [a.headers()["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers() == {
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "2",
        "X-RateLimit-Window": "900",
    }
    # The first requests were in the minute from 960 s: they leave the window at 1860 s.
    assert answers[3].retry_after == pytest.approx(960 + WINDOW_SECONDS - 1003)


def test_the_window_rolls_and_keys_are_apart() -> None:
    rates = RollingRates()
    for i in range(3):
        assert rates.hit("AK", 3, now=60.0 * i).allowed  # one per minute
    assert not rates.hit("AK", 3, now=200.0).allowed
    assert rates.hit("OTHER", 3, now=200.0).allowed  # another keypair is not affected
    # 15 minutes after the first minute, its request has left the window: one more fits.
    assert rates.hit("AK", 3, now=WINDOW_SECONDS + 1.0).used == 3
    assert not rates.hit("AK", 3, now=WINDOW_SECONDS + 2.0).allowed


def test_a_refused_request_is_not_counted() -> None:
    rates = RollingRates()
    rates.hit("AK", 1, now=0.0)
    for _ in range(100):
        assert not rates.hit("AK", 1, now=1.0).allowed
    assert rates.hit("AK", 1, now=WINDOW_SECONDS + 60.0).allowed


def test_memory_is_bounded_by_the_keys_kept() -> None:
    rates = RollingRates(max_keys=2)
    for key in ("A", "B", "C"):
        rates.hit(key, 1, now=0.0)
    assert rates.hit("A", 1, now=1.0).allowed  # A was forgotten first
    assert not rates.hit("C", 1, now=1.0).allowed


def test_a_rate_says_remaining_never_below_zero() -> None:
    assert Rate(limit=5, used=9, retry_after=3.0).headers()["X-RateLimit-Remaining"] == "0"


def test_failures_alone_count_against_a_throttle() -> None:
    """Signature failures: ``wait`` asks without counting, ``count`` records one that failed."""
    throttle = Throttle(limit=2, window_seconds=60)
    for now in (0.0, 1.0, 2.0):
        assert throttle.wait("AK", now) is None  # asking counts nothing
    throttle.count("AK", 3.0)
    throttle.count("AK", 4.0)
    assert throttle.wait("AK", 5.0) == pytest.approx(58.0)
    assert throttle.wait("OTHER", 5.0) is None
    assert throttle.wait("AK", 63.5) is None  # the first failure left the window


@pytest.mark.parametrize(
    ("allowed", "host", "served"),
    [
        ((), "anything:8090", True),  # no allow-list: every host
        (("api.example",), "api.example", True),
        (("api.example",), "API.Example.:443", True),  # case, a trailing dot and the port do not matter
        (("api.example",), "api.example.evil", False),
        (("api.example",), "evil.api.example", False),
        (("api.example",), "", False),
        (("api.example",), None, False),
        (("::1",), "[::1]", False),  # names, not addresses: list the address as the client writes it
        (("[::1]",), "[::1]", True),
        (("[::1]",), "[::1]:8090", True),
    ],
)
def test_the_host_allow_list(allowed: tuple[str, ...], host: str | None, served: bool) -> None:
    settings = ApiSettings(allowed_hosts=allowed, runner_key_value=SecretBytes(b"k" * 32))
    assert Guard.of(settings).serves_host(host) is served


def test_holdings_count_every_session_of_a_keypair_until_it_is_deleted() -> None:
    def session(name: str, owner: str, phase: str = "Running") -> dict:
        return {
            "metadata": {"namespace": "ns", "name": name},
            "spec": {"owner": {"accessKey": owner}},
            "status": {"phase": phase},
        }

    holdings = Holdings()
    holdings.on_change(
        "", "1", [(None, session("a", "AK")), (None, session("b", "AK")), (None, session("c", "BK"))]
    )
    assert (holdings.held("AK"), holdings.held("BK"), holdings.held("nobody")) == (2, 1, 0)
    holdings.on_change("1", "2", [(session("a", "AK"), session("a", "AK", "Terminated"))])
    assert holdings.held("AK") == 2  # ended, still kept: still held
    holdings.on_change("2", "3", [(session("a", "AK", "Terminated"), None)])
    assert holdings.held("AK") == 1
    holdings.on_change("3", "4", [(session("c", "BK"), None), (None, session("c", "AK"))])  # a name reused
    assert (holdings.held("AK"), holdings.held("BK")) == (2, 0)


def test_holdings_add_up_what_live_sessions_ask_for() -> None:
    def session(name: str, cpu: str, memory: str, gpu: int, size: int = 1, phase: str = "Running") -> dict:
        return {
            "metadata": {"namespace": "ns", "name": name},
            "spec": {
                "owner": {"accessKey": "AK"},
                "resources": {"cpu": cpu, "memory": memory, "gpu": gpu},
                "clusterSize": size,
            },
            "status": {"phase": phase},
        }

    holdings = Holdings()
    holdings.on_change(
        "", "1", [(None, session("a", "500m", "1Gi", 1)), (None, session("b", "1", "2Gi", 0, size=2))]
    )
    assert holdings.usage("AK") == Usage(Decimal("2.5"), Decimal(5 * 2**30), 1)
    ended = session("a", "500m", "1Gi", 1, phase="Terminated")
    holdings.on_change("1", "2", [(session("a", "500m", "1Gi", 1), ended)])
    assert holdings.usage("AK") == Usage(Decimal(2), Decimal(4 * 2**30), 0)  # an ended one holds nothing
    assert holdings.held("AK") == 2  # but it is still held


@pytest.mark.parametrize(
    ("limits", "beyond"),
    [
        (Limits(), []),
        (Limits(total_cpu="3"), []),  # 2 held + 1 asked: exactly the total
        (Limits(total_cpu="2500m"), ["cpu 3 in all > 2500m"]),
        (Limits(total_memory="4Gi"), [f"memory {5 * 2**30} bytes in all > 4Gi"]),
        (Limits(total_gpu=0), ["gpu 1 in all > 0"]),
    ],
)
def test_a_keypairs_totals_bound_its_live_sessions(limits: Limits, beyond: list[str]) -> None:
    held = Usage(Decimal(2), Decimal(4 * 2**30), 0)
    asked = Usage(Decimal(1), Decimal(2**30), 1)
    assert beyond_totals(held, asked, limits) == beyond
