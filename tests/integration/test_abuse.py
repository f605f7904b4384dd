"""The API's abuse limits through a real socket (docs/security.md): rates per keypair with
Backend.AI's X-RateLimit-* headers, failed signatures per key and per address, replays,
event streams per keypair, the Host allow-list, slow bodies and idle connections, and a
bounded flood from loopback that leaves the other keypairs served."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from kubernel_api import keypairs as kp
from kubernel_testkit.api_client import ApiClient, signed_headers
from kubernel_testkit.waiting import wait_until

from .conftest import api_settings, start_api

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def guarded(
    kube: client.ApiClient, namespace: str, **settings: Any
) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    """An API with these settings on a real socket, ready (its keypairs loaded)."""
    runner, base_url = await start_api(kube, api_settings(namespace, **settings))
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                async with http.get(base_url + "/readyz") as resp:
                    return resp.status == 200

            await wait_until(ready, timeout=30, what="the API ready")
            yield base_url, http
    finally:
        await runner.cleanup()


async def probe(api: ApiClient) -> Any:
    """A signed request that reaches the handler (a session that does not exist: 404)."""
    return await api.call("GET", "/kernel/no-such-session")


async def test_a_keypair_gets_its_rate_and_is_told_where_it_stands(
    kube: client.ApiClient, namespace: str, keypairs: dict[str, kp.Keypair], crds: None
) -> None:
    async with guarded(kube, namespace, rate_limit=3) as (base_url, http):
        alice, bob = ApiClient(base_url, keypairs["alice"], http), ApiClient(base_url, keypairs["bob"], http)
        answers = [await probe(alice) for _ in range(4)]
        assert [a.status for a in answers] == [404, 404, 404, 429]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert {a.headers["X-RateLimit-Limit"] for a in answers} == {"3"}
        assert {a.headers["X-RateLimit-Window"] for a in answers} == {"900"}
        refused = answers[3]
        assert refused.problem_type.endswith("/too-many-requests")
        assert 1 <= int(refused.headers["Retry-After"]) <= 900
        # Another keypair has its own count; a public route counts against no one.
        assert (await probe(bob)).headers["X-RateLimit-Remaining"] == "2"
        async with http.get(base_url + "/healthz") as resp:
            assert resp.status == 200 and "X-RateLimit-Limit" not in resp.headers


async def test_failed_signatures_are_throttled_and_never_lock_out_a_good_one(
    kube: client.ApiClient, namespace: str, keypairs: dict[str, kp.Keypair], crds: None
) -> None:
    async with guarded(kube, namespace, auth_failures_per_key=3, auth_failures_per_address=5) as (
        base_url,
        http,
    ):
        alice = ApiClient(base_url, keypairs["alice"], http)
        guessing = ApiClient(base_url, keypairs["alice"], http, secret_override="a-wrong-guess-0123456789")
        assert [(await probe(guessing)).status for _ in range(3)] == [401, 401, 401]
        # Alice's key failed 3 times: the next guess waits, and Alice herself does not.
        locked = await probe(guessing)
        assert locked.status == 429 and int(locked.headers["Retry-After"]) >= 1
        assert locked.problem_type.endswith("/too-many-requests")
        assert (await probe(alice)).status == 404
        # The address (behind an ingress: everyone's) failed 5 times with any key: every
        # further guess from it waits; good signatures from it are served.
        carol_guessing = ApiClient(
            base_url, keypairs["carol"], http, secret_override="another-wrong-guess-0123"
        )
        assert [(await probe(carol_guessing)).status for _ in range(3)] == [401, 401, 429]
        bob = ApiClient(base_url, keypairs["bob"], http)
        bob_guessing = ApiClient(base_url, keypairs["bob"], http, secret_override="bobs-wrong-guess-0123456")
        assert (await probe(bob_guessing)).status == 429  # this address failed 5 times in a minute
        assert (await probe(bob)).status == 404 and (await probe(alice)).status == 404


async def test_a_signature_is_good_once(
    kube: client.ApiClient, namespace: str, keypairs: dict[str, kp.Keypair], crds: None
) -> None:
    async with guarded(kube, namespace) as (base_url, http):
        alice = ApiClient(base_url, keypairs["alice"], http)
        headers = alice.signed_headers("GET", "/kernel/no-such-session")
        statuses = []
        for _ in range(2):  # the same request, copied off the wire
            async with http.get(base_url + "/kernel/no-such-session", headers=headers) as resp:
                statuses.append(resp.status)
        assert statuses == [404, 401]
        assert (await probe(alice)).status == 404  # a fresh signature is fine


async def test_event_streams_per_keypair_are_capped(
    kube: client.ApiClient, namespace: str, keypairs: dict[str, kp.Keypair], crds: None
) -> None:
    path = "/stream/kernel/_/events?sessionId=*"
    async with guarded(kube, namespace, streams_per_keypair=2) as (base_url, http):
        alice, bob = ApiClient(base_url, keypairs["alice"], http), ApiClient(base_url, keypairs["bob"], http)

        async def open_stream(api: ApiClient) -> aiohttp.ClientResponse:
            return await http.get(base_url + path, headers=api.signed_headers("GET", path))

        first, second = await open_stream(alice), await open_stream(alice)
        third = await open_stream(alice)
        try:
            assert (first.status, second.status, third.status) == (200, 200, 429)
            assert "Retry-After" in third.headers
            other = await open_stream(bob)  # another keypair's allowance
            assert other.status == 200
            other.close()
            first.close()  # a stream that ends gives its place back

            async def reopened() -> bool:
                again = await open_stream(alice)
                again.close()
                return again.status == 200

            await wait_until(reopened, timeout=10, what="alice's closed stream counted out")
        finally:
            for resp in (first, second, third):
                resp.close()


async def test_only_the_allowed_host_names_are_served(
    kube: client.ApiClient, namespace: str, keypairs: dict[str, kp.Keypair], crds: None
) -> None:
    async with guarded(kube, namespace, allowed_hosts=("api.kubernel.example",)) as (base_url, http):
        alice = ApiClient(base_url, keypairs["alice"], http)
        refused = await probe(alice)  # Host: 127.0.0.1:<port>
        assert refused.status == 400 and "Host" in refused.body["detail"]
        path = "/kernel/no-such-session"
        headers = signed_headers(
            keypairs["alice"], "GET", path, "api.kubernel.example", "application/octet-stream"
        )
        async with http.get(base_url + path, headers={**headers, "Host": "api.kubernel.example"}) as resp:
            assert resp.status == 404  # served, and signed over that host
        async with http.get(base_url + "/healthz") as resp:
            assert resp.status == 200  # probes come to the Pod's address


async def raw_connection(base_url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = base_url.split("://", 1)[1].split(":")
    return await asyncio.open_connection(host, int(port))


async def test_a_slow_body_is_408_and_a_slow_head_is_closed(
    kube: client.ApiClient, namespace: str, keypairs: dict[str, kp.Keypair], crds: None
) -> None:
    async with guarded(kube, namespace, body_seconds=1.0, connection_idle_seconds=1.0) as (base_url, _http):
        alice = ApiClient(base_url, keypairs["alice"], _http)
        reader, writer = await raw_connection(base_url)
        head = alice.raw_head(
            "POST", "/kernel", content_type="application/json", extra="Content-Length: 100\r\n"
        )
        writer.write(head + b'{"clientSessionToken"')  # and then nothing more
        answer = await asyncio.wait_for(reader.read(65536), timeout=10)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        writer.close()
        # A request head that never ends: the connection is closed, not held.
        reader, writer = await raw_connection(base_url)
        writer.write(b"GET /kernel/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), timeout=10) == b""
        assert time.monotonic() - started < 9
        writer.close()


async def test_a_flood_from_one_keypair_leaves_the_others_served(
    kube: client.ApiClient, namespace: str, keypairs: dict[str, kp.Keypair], crds: None
) -> None:
    """Bounded: 400 requests from alice over 8 connections against a limit of 100, while bob
    makes 40 one after another; alice is refused beyond her limit, bob never is."""
    async with guarded(kube, namespace, rate_limit=100) as (base_url, http):
        alice, bob = ApiClient(base_url, keypairs["alice"], http), ApiClient(base_url, keypairs["bob"], http)
        statuses: list[int] = []

        async def flood() -> None:
            for _ in range(50):
                statuses.append((await probe(alice)).status)

        async def steady() -> list[int]:
            return [(await probe(bob)).status for _ in range(40)]

        flooding = [asyncio.create_task(flood()) for _ in range(8)]
        bobs = await asyncio.wait_for(steady(), timeout=120)
        await asyncio.wait_for(asyncio.gather(*flooding), timeout=120)
        assert bobs == [404] * 40
        assert statuses.count(404) == 100 and statuses.count(429) == 300
        async with http.get(base_url + "/readyz") as resp:
            assert resp.status == 200


async def test_a_keypair_holds_so_many_sessions_ended_ones_included(
    kube: client.ApiClient, namespace: str, keypairs: dict[str, kp.Keypair], operator: object
) -> None:
    async with guarded(kube, namespace, sessions_per_keypair=2) as (base_url, http):
        alice, bob = ApiClient(base_url, keypairs["alice"], http), ApiClient(base_url, keypairs["bob"], http)
        for token in ("held-1", "held-2"):
            created = await alice.create(token)
            assert created.status == 201, created.body

        async def both_seen() -> bool:  # the count comes from the API's watch
            return all(
                [(await alice.call("GET", f"/kernel/{t}")).status == 200 for t in ("held-1", "held-2")]
            )

        await wait_until(both_seen, timeout=30, what="the API to see both sessions")
        refused = await alice.create("held-3")
        assert refused.status == 412 and refused.problem_type.endswith("/quota-exceeded"), refused.body
        assert (await alice.call("DELETE", "/kernel/held-1")).status == 200
        # Ended, but kept for the retention time: still held.
        assert (await alice.create("held-3")).status == 412
        # Its own token again replaces the ended session: no new object.
        again = await alice.create("held-1")
        assert again.status == 201 and again.body["created"] is True, again.body
        assert (await bob.create("held-1")).status == 201  # another keypair's count


async def test_the_namespaces_resource_quota_is_a_412_not_a_500(
    kube: client.ApiClient, namespace: str, keypairs: dict[str, kp.Keypair], crds: None
) -> None:
    core = client.CoreV1Api(kube)
    await core.create_namespaced_resource_quota(
        namespace,
        {"metadata": {"name": "sessions"}, "spec": {"hard": {"count/kernelsessions.kubernel.io": "1"}}},
    )

    async def counting() -> bool:  # until its controller has set it up, the quota refuses everything
        quota = await core.read_namespaced_resource_quota("sessions", namespace)
        return bool(quota.status and quota.status.hard)

    await wait_until(counting, timeout=30, what="the ResourceQuota set up")
    async with guarded(kube, namespace) as (base_url, http):
        alice = ApiClient(base_url, keypairs["alice"], http)
        assert (await alice.create("quota-1", enqueueOnly=True)).status == 201
        answer = await alice.create("quota-2", enqueueOnly=True)
        assert answer.status == 412 and answer.problem_type.endswith("/quota-exceeded"), answer.body


async def test_restarts_of_a_session_are_throttled(
    kube: client.ApiClient, namespace: str, keypairs: dict[str, kp.Keypair], operator: object
) -> None:
    async with guarded(kube, namespace, restarts_per_session=2) as (base_url, http):
        alice = ApiClient(base_url, keypairs["alice"], http)
        for token in ("restarted", "other"):
            created = await alice.create(token)
            assert created.status == 201 and created.body["status"] == "RUNNING", created.body
        statuses = [(await alice.call("PATCH", "/kernel/restarted")).status for _ in range(3)]
        assert statuses == [204, 204, 429]
        assert (await alice.call("PATCH", "/kernel/other")).status == 204  # another session's allowance


async def test_a_keypairs_live_sessions_stay_within_its_totals(
    kube: client.ApiClient, namespace: str, keypairs: dict[str, kp.Keypair], operator: object
) -> None:
    """frugal may hold 1 CPU and 1Gi in all its live sessions; an ended one holds nothing."""
    half = {"resources": {"cpu": "500m", "mem": "256m"}}
    async with guarded(kube, namespace) as (base_url, http):
        frugal = ApiClient(base_url, keypairs["frugal"], http)
        for token in ("total-1", "total-2"):
            created = await frugal.create(token, config=half)
            assert created.status == 201, created.body

        async def both_seen() -> bool:
            return all(
                [(await frugal.call("GET", f"/kernel/{t}")).status == 200 for t in ("total-1", "total-2")]
            )

        await wait_until(both_seen, timeout=30, what="the API to see both sessions")
        refused = await frugal.create("total-3", config=half)
        assert refused.status == 412 and "cpu 1.5 in all > 1" in refused.body["detail"], refused.body
        assert (await frugal.call("DELETE", "/kernel/total-1")).status == 200

        async def fits() -> Any:
            answer = await frugal.create("total-3", config=half)
            return answer if answer.status == 201 else None

        await wait_until(fits, timeout=30, what="the ended session's share given back")
