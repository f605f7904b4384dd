"""The lifecycle event stream: format, roles, filters, resume (across an API kill: fault/test_kills.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from kubernetes_asyncio import client

from kubernel_api import keypairs as kp
from kubernel_api.keys import METRICS
from kubernel_testkit.api_client import ApiClient

from .conftest import RunningApi, api_settings, start_api
from .sse import EventStream, Message

RESTART = [
    "kernel_preparing",
    "kernel_pulling",
    "kernel_creating",
    "kernel_started",
]  # a restart replays these
STARTUP = ["kernel_enqueued", *RESTART]


@contextlib.asynccontextmanager
async def stream(
    client: ApiClient, params: dict | None = None, last_event_id: str | None = None, expect: int = 200
) -> AsyncIterator[EventStream]:
    url = client.url("/stream/kernel/_/events", params)
    headers = client.signed_headers("GET", str(url.relative()))
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    async with client.http.get(
        url, headers=headers, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)
    ) as resp:
        assert resp.status == expect, await resp.text()
        yield EventStream(resp)


async def until_started(events: EventStream, session_ids: set[str], timeout: float = 30) -> list[Message]:
    """Messages up to and including kernel_started (or kernel_terminated) of every one of ``session_ids``."""
    got, pending = [], set(session_ids)
    while pending:
        message = await events.next(timeout)
        assert message is not None, "the stream ended early"
        got.append(message)
        if message.event in ("kernel_started", "kernel_terminated"):
            pending.discard(message.data["sessionId"])
    return got


def startup_of(messages: list[Message], session_id: str) -> list[str]:
    return [m.event for m in messages if m.data["sessionId"] == session_id]


def is_startup(events: list[str], *, restart: bool = False, late: bool = False) -> bool:
    """A whole start-up (no kernel_pulling when the node had the image). ``late``: the
    stream opened after the create answer, possibly after kernel_enqueued."""
    full = RESTART if restart else STARTUP
    shapes = [full, [e for e in full if e != "kernel_pulling"]]
    if late and not restart:
        shapes += [shape[1:] for shape in shapes]
    return events in shapes


async def test_stream_format_headers_ids_retry_heartbeat(api: RunningApi) -> None:
    alice = api.client("alice")
    async with stream(alice, {"sessionId": "*"}) as events:
        headers = events.response.headers
        assert headers["Content-Type"].startswith("text/event-stream")
        assert "no-cache" in headers["Cache-Control"] and headers["X-Accel-Buffering"] == "no"
        assert (await alice.create("sse-01", enqueueOnly=True)).status == 201
        messages = await until_started(events, {"sse-01"})
        assert is_startup([m.event for m in messages]), messages
        assert messages[0].retry == 3000 and all(m.retry is None for m in messages[1:])
        assert all(m.id for m in messages) and len({m.id for m in messages}) == len(messages)
        # An ordinary start-up step has no reason: null, as 19.09's manager sends it.
        assert messages[-1].data == {
            "sessionId": "sse-01",
            "ownerAccessKey": api.keypairs["alice"].access_key,
            "reason": None,
        }
        await events.comment("heartbeat", timeout=5)
        await alice.call("DELETE", "/kernel/sse-01")
        ending = await events.next(10)
        assert (ending.event, ending.data["reason"]) == ("kernel_terminating", "user-requested")
        ended = await events.next(10)
        assert ended.event == "kernel_terminated"
        assert ended.data["reason"] == "user-requested" and ended.data["result"] == "UNDEFINED"


async def test_roles_and_filters_decide_what_each_stream_carries(api: RunningApi) -> None:
    names = ["alice", "bob", "admin", "otheradmin", "root"]
    domain_of = {k.access_key: k.domain for k in api.keypairs.values()}
    owner_of = {n: api.keypairs[n].access_key for n in api.keypairs}
    async with contextlib.AsyncExitStack() as stack:
        streams = {n: await stack.enter_async_context(stream(api.client(n))) for n in names}
        research = await stack.enter_async_context(stream(api.client("alice"), {"group": "research"}))
        assert (await api.client("alice").create("a-01", group="research")).body["status"] == "RUNNING"
        assert (await api.client("carol").create("c-01")).body["status"] == "RUNNING"
        # Each stream ends with a session of its own owner: whatever it carries of a-01
        # and c-01 came before that (one watch feeds every stream, in order).
        for n in names:
            assert (await api.client(n).create(f"{n}-own", enqueueOnly=True)).status == 201
        assert (await api.client("alice").create("a-02", group="research", enqueueOnly=True)).status == 201
        seen = {n: await until_started(streams[n], {f"{n}-own"}) for n in names}
        seen_research = await until_started(research, {"a-02"})
    owners = {n: {m.data["ownerAccessKey"] for m in seen[n]} for n in names}
    sessions = {n: {m.data["sessionId"] for m in seen[n]} for n in names}
    assert owners["alice"] == {owner_of["alice"]} and is_startup(startup_of(seen["alice"], "a-01"))
    assert owners["bob"] == {owner_of["bob"]} and "a-01" not in sessions["bob"]
    assert {domain_of[o] for o in owners["admin"]} == {"default"} and is_startup(
        startup_of(seen["admin"], "a-01")
    )
    assert {domain_of[o] for o in owners["otheradmin"]} == {"other"}
    assert is_startup(startup_of(seen["otheradmin"], "c-01"))
    assert is_startup(startup_of(seen["root"], "a-01")) and is_startup(startup_of(seen["root"], "c-01"))
    assert {m.data["sessionId"] for m in seen_research} == {"a-01", "a-02"}


async def test_stream_parameters_follow_the_roles(api: RunningApi) -> None:
    alice_key = api.keypairs["alice"].access_key
    assert (await api.client("alice").create("p-01")).body["status"] == "RUNNING"
    async with stream(api.client("bob"), {"ownerAccessKey": alice_key}, expect=403):
        pass
    async with stream(api.client("alice"), {"group": "no-such-group"}, expect=404):
        pass
    async with stream(
        api.client("carol"), {"groupName": "research"}, expect=404
    ):  # a group of another domain
        pass
    async with stream(
        api.client("otheradmin"), {"sessionId": "p-01", "owner_access_key": alice_key}, expect=403
    ):
        pass
    async with stream(api.client("alice"), last_event_id="garbage", expect=400):
        pass
    async with stream(api.client("admin"), {"sessionId": "p-01", "owner_access_key": alice_key}) as events:
        assert (await api.client("alice").call("PATCH", "/kernel/p-01")).status == 204
        restarted = await until_started(events, {"p-01"})
    assert is_startup([m.event for m in restarted], restart=True)
    assert {m.data["reason"] for m in restarted} == {"restarting"}


async def test_stream_first_then_create_sees_the_whole_life(api: RunningApi) -> None:
    """19.09's only race-free pattern: open the stream for a session id that does not
    exist yet, then create it. Another user's stream for the same id sees nothing of it."""
    alice, bob = api.client("alice"), api.client("bob")
    async with (
        stream(alice, {"sessionId": "first-01"}) as mine,
        stream(bob, {"sessionId": "first-01"}) as theirs,
        stream(alice, {"groupName": "research"}) as research,
    ):
        assert (await alice.create("first-01", enqueueOnly=True)).status == 201
        seen = await until_started(mine, {"first-01"})
        assert is_startup([m.event for m in seen]), seen
        assert (await alice.call("DELETE", "/kernel/first-01")).status == 200
        assert [(await mine.next(10)).event for _ in range(2)] == ["kernel_terminating", "kernel_terminated"]
        # bob's stream carries only bob's session of that id.
        assert (await bob.create("first-01", enqueueOnly=True)).status == 201
        bobs = await until_started(theirs, {"first-01"})
        assert {m.data["ownerAccessKey"] for m in bobs} == {api.keypairs["bob"].access_key}
        # The research group's stream saw none of these (default group).
        assert (await alice.create("first-02", group="research", enqueueOnly=True)).status == 201
        assert {m.data["sessionId"] for m in await until_started(research, {"first-02"})} == {"first-02"}


async def test_a_session_that_never_started_is_cancelled_then_terminated(api: RunningApi) -> None:
    alice = api.client("alice")
    async with stream(alice, {"sessionId": "never-01"}) as events:
        # 5 GPUs fit no simulated node: the Pod stays unschedulable until we destroy it.
        assert (
            await alice.create("never-01", enqueueOnly=True, config={"resources": {"cuda.device": 5}})
        ).status == 201
        destroyed = await alice.call("DELETE", "/kernel/never-01")
        assert destroyed.body["stats"]["status"] == "cancelled"
        got = []
        while not got or got[-1].event != "kernel_terminated":
            message = await events.next(10)
            assert message is not None
            got.append(message)
    assert [m.event for m in got][-2:] == ["kernel_cancelled", "kernel_terminated"]
    assert {m.data["reason"] for m in got[-2:]} == {"user-requested"}


async def startup_across_a_resume(client: ApiClient, token: str) -> list[Message]:
    """A session's start-up seen by a stream that disconnects after two messages and resumes
    with Last-Event-ID while the session goes on starting."""
    async with stream(client) as events:
        await client.create(token, enqueueOnly=True)
        first = [await events.next(30), await events.next(30)]
    async with stream(client, last_event_id=first[-1].id) as events:
        return first + await until_started(events, {token})


async def test_resume_with_last_event_id_gets_each_event_once(api: RunningApi) -> None:
    seen = await startup_across_a_resume(api.client("alice"), "r-01")
    assert is_startup([m.event for m in seen]), seen


@pytest.mark.parametrize(("kept", "source"), [(10_000, "memory"), (0, "listing")])
async def test_a_resume_is_served_from_memory_or_from_one_listing(
    kube: client.ApiClient,
    namespace: str,
    keypairs: dict[str, kp.Keypair],
    operator: object,
    kept: int,
    source: str,
) -> None:
    """Inside the ring of recent entries (KUBERNEL_API_RESUME_ENTRIES) a resume needs no
    listing; with no ring it lists. Either way each event arrives once."""
    runner, base_url = await start_api(kube, api_settings(namespace, resume_entries=kept))
    try:
        async with aiohttp.ClientSession() as http:
            seen = await startup_across_a_resume(ApiClient(base_url, keypairs["alice"], http), "ring-01")
        assert is_startup([m.event for m in seen]), seen
        registry = runner.app[METRICS].registry
        assert registry.get_sample_value("kubernel_api_sse_resumes_total", {"source": source}) == 1
    finally:
        await runner.cleanup()


async def test_revoking_a_keypair_closes_its_open_streams(
    api: RunningApi, kube: client.ApiClient, namespace: str
) -> None:
    """Deactivating a keypair, or changing its role, ends the streams it opened within
    seconds; other keypairs' streams go on."""
    core = client.CoreV1Api(kube)
    bob, carol = api.keypairs["bob"], api.keypairs["carol"]
    async with (
        stream(api.client("bob")) as bobs,
        stream(api.client("carol")) as carols,
        stream(api.client("alice")) as alices,
    ):
        await core.patch_namespaced_secret(
            kp.secret_name(bob.access_key), namespace, kp.activation_patch(False)
        )
        assert await bobs.next(10) is None  # the end of the stream
        promoted = kp.to_secret(carol.model_copy(update={"role": kp.Role.ADMIN}))
        await core.replace_namespaced_secret(kp.secret_name(carol.access_key), namespace, promoted)
        assert await carols.next(10) is None
        # alice's stream is still open and still delivers.
        assert (await api.client("alice").create("after-revoke", enqueueOnly=True)).status == 201
        assert (await alices.next(30)).data["sessionId"] == "after-revoke"


async def test_shutdown_ends_open_streams_cleanly(
    kube, namespace: str, keypairs: dict, operator: object
) -> None:
    runner, base_url = await start_api(kube, api_settings(namespace))
    async with aiohttp.ClientSession() as http:
        async with stream(ApiClient(base_url, keypairs["alice"], http)) as events:
            cleanup = asyncio.create_task(runner.cleanup())
            assert await events.next(10) is None  # end of stream, not an error
            await cleanup
