"""The SSE writer (sse.Fanout) over the Hub, with sinks that record what they are given:
every subscriber gets each of its messages once and in order, whether it is alone or in
a group, while it catches up, and across the move into its group; a client that does
not take its bytes is cut off and the others go on; shutdown writes what is pending.
The HTTP side (real sockets, a real API process) is tested in tests/integration."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from kubernel_api.informer import Informer
from kubernel_api.keypairs import Keypair, Role
from kubernel_api.metrics import Metrics
from kubernel_api.sse import Fanout, Pacing
from kubernel_api.stream import Hub, StreamFilter, Subscriber
from kubernel_testkit.waiting import wait_until

from .test_api_stream_ids import ROOT, body

_MESSAGE = re.compile(rb'event: (\w+)\ndata: \{"sessionId":"([^"]+)"')
USER = Keypair(access_key="AKIAU", secret_key="u" * 20)  # owns every session of body()
OTHER = Keypair(access_key="AKIAOTHER", secret_key="o" * 20, role=Role.USER)


class RecordingSink:
    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.data = b""

    async def __call__(self, data: bytes) -> bool:
        if self.accept:
            self.data += data
        return self.accept

    async def heartbeat(self) -> bool:
        return await self(b": heartbeat\n\n")

    def messages(self) -> list[tuple[str, str]]:
        """(sessionId, event) of each message, in order."""
        return [(s.decode(), e.decode()) for e, s in _MESSAGE.findall(self.data)]


class World:
    """An informer fed by hand, its Hub, and the Fanout running."""

    def __init__(self, heartbeat_seconds: float = 60.0) -> None:
        self.informer = Informer("test", list_fn=None)  # type: ignore[arg-type]
        self.informer.loaded.set_result(None)
        self.informer.resource_version = "100"
        self.metrics = Metrics()
        self.hub = Hub(self.informer, self.metrics, queue_size=50)
        sent = Counter("sent", "sent", registry=CollectorRegistry())
        self.fanout = Fanout(self.hub, Pacing(3000, heartbeat_seconds, 0.0, 1 << 20), sent)
        self.state: dict[str, dict] = {}
        self.rv = 100

    def advance(self, session: str, entries: int) -> None:
        """The watch shows ``session`` with ``entries`` lifecycle entries."""
        self.rv += 1
        new = body(f"uid-{session}", session, entries, self.rv)
        old = self.state.get(session)
        self.state[session] = new
        previous, self.informer.resource_version = self.informer.resource_version, str(self.rv)
        self.informer.cache[("ns", session)] = new
        self.hub.on_change(previous, str(self.rv), [(old, new)])

    async def subscribe(self, caller: Keypair, sink: RecordingSink | None = None) -> Subscriber:
        _, subscriber = await self.hub.open(StreamFilter(caller), None, sessions_at=None)  # type: ignore[arg-type]
        if sink is not None:
            self.attach(subscriber, sink)
        return subscriber

    def attach(self, subscriber: Subscriber, sink: RecordingSink) -> None:
        """What write_stream does once the catch-up is written."""
        subscriber.sink = sink
        self.hub.mark(subscriber)

    async def settled(self) -> None:
        async def nothing_pending() -> bool:
            hub = self.hub
            return (
                not hub.dirty_groups
                and not any(g.pending for g in hub.groups.values())
                and all(s.sink is None for s in hub.dirty)  # those wait for their catch-up
            )

        await wait_until(nothing_pending, timeout=5, what="the writer caught up", interval=0.01)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = World()
    task = asyncio.create_task(w.fanout.run())
    yield w
    task.cancel()


async def test_subscribers_of_one_filter_share_a_group_and_miss_nothing_across_the_move(world: World) -> None:
    first, second = RecordingSink(), RecordingSink()
    a = await world.subscribe(ROOT, first)
    world.advance("s1", 1)
    b = await world.subscribe(ROOT, second)
    world.advance("s1", 2)  # before any pass: both alone, both get it
    await world.settled()
    assert a.group is not None and a.group is b.group and not world.hub.alone
    world.advance("s2", 1)
    world.advance("s1", 4)  # two entries in one event
    await world.settled()
    expected = [("s1", "kernel_preparing"), ("s1", "kernel_pulling")]
    later = [("s2", "kernel_preparing"), ("s1", "kernel_creating"), ("s1", "kernel_started")]
    assert first.messages() == expected + later
    assert second.messages() == expected[1:] + later  # from its subscription on


async def test_a_subscriber_catching_up_keeps_its_messages_until_its_sink_is_ready(world: World) -> None:
    await world.subscribe(ROOT, RecordingSink())  # a group already exists
    await world.settled()
    late = await world.subscribe(ROOT)  # still writing its catch-up: no sink yet
    for entries in range(1, 4):
        world.advance("s1", entries)
        await world.settled()
    assert late.group is None and len(late.pending) == 3
    sink = RecordingSink()
    world.attach(late, sink)
    world.advance("s1", 4)
    await world.settled()
    assert [e for _, e in sink.messages()] == [
        "kernel_preparing",
        "kernel_pulling",
        "kernel_creating",
        "kernel_started",
    ]
    assert late.group is not None


async def test_filters_keep_tenants_apart(world: World) -> None:
    owner, other, admin = RecordingSink(), RecordingSink(), RecordingSink()
    await world.subscribe(USER, owner)
    await world.subscribe(OTHER, other)
    await world.subscribe(ROOT, admin)
    world.advance("s1", 1)
    await world.settled()
    world.advance("s1", 2)
    await world.settled()
    assert len(world.hub.groups) == 3
    assert owner.messages() == admin.messages() == [("s1", "kernel_preparing"), ("s1", "kernel_pulling")]
    assert other.data == b""


async def test_a_client_that_does_not_take_its_bytes_is_cut_off_and_the_others_go_on(world: World) -> None:
    healthy, stuck = RecordingSink(), RecordingSink()
    await world.subscribe(ROOT, healthy)
    slow = await world.subscribe(ROOT, stuck)
    world.advance("s1", 1)
    await world.settled()
    stuck.accept = False
    world.advance("s1", 2)
    await world.settled()
    assert slow.ended.done() and slow.dropped
    assert world.metrics.dropped_streams._value.get() == 1
    world.advance("s1", 3)
    await world.settled()
    assert [e for _, e in healthy.messages()] == ["kernel_preparing", "kernel_pulling", "kernel_creating"]


async def test_a_subscriber_alone_that_falls_queue_size_behind_is_cut_off(world: World) -> None:
    waiting = await world.subscribe(ROOT)  # never gets a sink
    for entries in range(1, world.hub.queue_size + 2):
        world.advance("s1", entries)
    assert waiting.dropped and waiting.ended.done() and waiting.pending == []


async def test_shutdown_writes_what_is_pending_then_ends_every_stream(world: World) -> None:
    sinks = [RecordingSink(), RecordingSink()]
    subscribers = [await world.subscribe(ROOT, s) for s in sinks]
    await world.settled()
    world.advance("s1", 1)
    world.hub.shutdown()
    await asyncio.wait_for(asyncio.gather(*(s.ended for s in subscribers)), 5)
    assert all(s.messages() == [("s1", "kernel_preparing")] for s in sinks)


async def test_a_quiet_stream_gets_heartbeats() -> None:
    world = World(heartbeat_seconds=0.1)
    task = asyncio.create_task(world.fanout.run())
    try:
        sink = RecordingSink()
        await world.subscribe(ROOT, sink)

        async def beaten() -> bool:
            return sink.data.count(b": heartbeat") >= 2

        await wait_until(beaten, timeout=5, what="two heartbeats", interval=0.02)
    finally:
        task.cancel()


async def test_closing_the_last_member_removes_its_group(world: World) -> None:
    subscriber = await world.subscribe(ROOT, RecordingSink())
    await world.settled()
    assert world.hub.groups
    world.hub.close(subscriber)
    assert not world.hub.groups and not world.hub.subscribers
