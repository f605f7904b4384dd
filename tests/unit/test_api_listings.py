"""Resumes from one point share one listing (pure asyncio, no API server)."""

from __future__ import annotations

import asyncio

import pytest

from kubernel_api.listings import SharedListings
from kubernel_testkit.waiting import wait_until


class SlowLister:
    def __init__(self) -> None:
        self.asked: list[str] = []
        self.release = asyncio.Event()
        self.fail = False

    async def __call__(self, rv: str) -> list[dict]:
        self.asked.append(rv)
        await self.release.wait()
        if self.fail:
            raise TimeoutError("the API server is slow")
        return [{"rv": rv}]


async def test_concurrent_resumes_from_one_point_make_one_listing() -> None:
    lister = SlowLister()
    shared = SharedListings(lister)
    waiting = [asyncio.ensure_future(shared(rv)) for rv in ["10"] * 500 + ["11"] * 500]
    await asyncio.sleep(0)  # let every resume ask
    lister.release.set()
    results = await asyncio.gather(*waiting)
    assert sorted(lister.asked) == ["10", "11"]
    assert results[0] == [{"rv": "10"}] and results[-1] == [{"rv": "11"}]


async def test_a_recent_listing_serves_later_resumes_then_expires() -> None:
    lister = SlowLister()
    lister.release.set()
    shared = SharedListings(lister, keep_seconds=0.2, keep=2)
    await shared("10")
    await shared("10")
    assert lister.asked == ["10"]
    await shared("11")
    await shared("12")  # only two kept: "10" is forgotten
    await shared("10")
    assert lister.asked == ["10", "11", "12", "10"]

    async def expired() -> bool:
        await shared("12")
        return lister.asked.count("12") == 2

    await wait_until(expired, timeout=5, what="the kept listing of 12 expired")


async def test_a_failed_listing_is_not_kept_and_a_leaving_resume_does_not_cancel_the_others() -> None:
    lister = SlowLister()
    shared = SharedListings(lister)
    leaving, staying = asyncio.ensure_future(shared("10")), asyncio.ensure_future(shared("10"))
    await asyncio.sleep(0)
    leaving.cancel()
    lister.fail = True
    lister.release.set()
    with pytest.raises(TimeoutError):
        await staying
    lister.fail = False
    assert await shared("10") == [{"rv": "10"}]
    assert lister.asked == ["10", "10"]
