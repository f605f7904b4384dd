"""kill -9 of our own processes mid-work: nothing is lost, nothing happens twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from pathlib import Path

import aiohttp
from kubernetes_asyncio import client

from kubernel import resource as r
from kubernel_api import keypairs as kp
from kubernel_testkit.api_client import ApiClient
from kubernel_testkit.waiting import wait_until

from ..api_process import ApiProcess
from ..conftest import api_settings, start_api
from ..operator_process import OperatorProcess
from ..sse import EventStream, Message
from ..test_api_stream import STARTUP, is_startup, startup_of, stream, until_started

SESSIONS = 50


async def read_all(events: EventStream, into: list[Message]) -> None:
    """Collect messages until the stream ends or the task is cancelled."""
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
        while (message := await events.next(3600)) is not None:
            into.append(message)


async def unstarted(kube: client.ApiClient, namespace: str, seen: list[Message]) -> str:
    """What the sessions without a kernel_started look like (for the failure message)."""
    started = {m.data["sessionId"] for m in seen if m.event == "kernel_started"}
    listed = await client.CustomObjectsApi(kube).list_namespaced_custom_object(
        r.GROUP, r.VERSION, namespace, r.PLURAL
    )
    pods = await client.CoreV1Api(kube).list_namespaced_pod(namespace)
    lines = []
    for body in listed["items"]:
        if body["spec"]["sessionId"] not in started:
            mine = [
                (p.metadata.name, p.status.phase)
                for p in pods.items
                if p.metadata.labels.get(r.LABEL_SESSION) == body["metadata"]["name"]
            ]
            lines.append(
                json.dumps(
                    {
                        "name": body["metadata"]["name"],
                        "annotations": body["metadata"].get("annotations"),
                        "finalizers": body["metadata"].get("finalizers"),
                        "status": body.get("status"),
                        "pods": mine,
                    },
                    default=str,
                )
            )
    return "\n".join(lines)


async def test_operator_killed_during_50_concurrent_creations(
    kube: client.ApiClient,
    own_namespace: str,
    own_keypairs: dict[str, kp.Keypair],
    own_operator: OperatorProcess,
) -> None:
    runner, base_url = await start_api(kube, api_settings(own_namespace))
    tokens = {f"op-{i:02}" for i in range(SESSIONS)}
    try:
        async with aiohttp.ClientSession() as http:
            alice = ApiClient(base_url, own_keypairs["alice"], http)
            seen: list[Message] = []
            async with stream(alice) as events:
                reader = asyncio.create_task(read_all(events, seen))
                creates = asyncio.gather(*(alice.create(t, enqueueOnly=True) for t in sorted(tokens)))

                async def progressed() -> bool:  # kill mid-flight: some sessions started, most not
                    return sum(m.event == "kernel_started" for m in seen) >= 3

                await wait_until(progressed, timeout=30, what="3 sessions started")
                own_operator.kill()
                answers = await creates
                assert all(a.status == 201 for a in answers), [a.body for a in answers if a.status != 201]
                started_before = sum(m.event == "kernel_started" for m in seen)
                assert started_before < SESSIONS, "the kill came too late to prove anything"
                own_operator.start()

                async def all_started() -> bool:
                    return {m.data["sessionId"] for m in seen if m.event == "kernel_started"} == tokens

                try:
                    await wait_until(all_started, timeout=90, what="every kernel_started")
                except AssertionError as failure:
                    raise AssertionError(f"{failure}\n{await unstarted(kube, own_namespace, seen)}") from None
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
    finally:
        await runner.cleanup()

    started = Counter(m.data["sessionId"] for m in seen if m.event == "kernel_started")
    assert set(started) == tokens and set(started.values()) == {1}, started
    ids = [m.id for m in seen]
    assert len(ids) == len(set(ids)), "an event id arrived twice"
    for token in tokens:
        assert is_startup(startup_of(seen, token)), (token, startup_of(seen, token))

    custom, core = client.CustomObjectsApi(kube), client.CoreV1Api(kube)
    listed = await custom.list_namespaced_custom_object(r.GROUP, r.VERSION, own_namespace, r.PLURAL)
    assert len(listed["items"]) == SESSIONS
    for body in listed["items"]:
        lifecycle = body["status"]["lifecycle"]
        assert [e["seq"] for e in lifecycle] == list(range(1, len(lifecycle) + 1)), "a gap or a repeat"
        assert [e["event"] for e in lifecycle] in (STARTUP, [e for e in STARTUP if e != "kernel_pulling"])
    pods = (
        await core.list_namespaced_pod(own_namespace, label_selector=f"{r.LABEL_MANAGED_BY}={r.MANAGED_BY}")
    ).items
    per_session = Counter(p.metadata.labels[r.LABEL_SESSION] for p in pods)
    assert len(per_session) == SESSIONS and set(per_session.values()) == {1}, "a duplicate Pod"


async def test_api_killed_while_10_clients_stream(
    kubeconfig: str, namespace: str, keypairs: dict[str, kp.Keypair], operator: object, tmp_path: Path
) -> None:
    server = ApiProcess(kubeconfig, namespace, tmp_path)
    server.start()
    clients = 10
    tokens = {f"ak-0{i}" for i in range(6)}
    try:
        async with aiohttp.ClientSession() as http:
            alice = ApiClient(server.base_url, keypairs["alice"], http)
            received: list[list[Message]] = [[] for _ in range(clients)]
            async with contextlib.AsyncExitStack() as streams:
                opened = [await streams.enter_async_context(stream(alice)) for _ in range(clients)]
                readers = [
                    asyncio.create_task(read_all(s, into)) for s, into in zip(opened, received, strict=True)
                ]
                await alice.create("ak-00", enqueueOnly=True)

                async def all_saw_the_first_start() -> bool:
                    return all(any(m.event == "kernel_started" for m in got) for got in received)

                await wait_until(all_saw_the_first_start, timeout=30, what="every client saw ak-00 start")
                for i in range(1, 6):
                    assert (await alice.create(f"ak-0{i}", enqueueOnly=True)).status == 201
                server.kill()  # the sessions go on starting while no API process runs
                await asyncio.gather(*readers)
            server.start()
            for got in received:
                pending = tokens - {m.data["sessionId"] for m in got if m.event == "kernel_started"}
                if pending:
                    async with stream(alice, last_event_id=got[-1].id) as events:
                        got.extend(await until_started(events, pending))
    finally:
        server.stop()
    for got in received:
        ids = [m.id for m in got]
        assert len(ids) == len(set(ids)), "an event arrived twice"
        for i in range(6):
            assert is_startup(startup_of(got, f"ak-0{i}")), (i, [(m.event, m.data["sessionId"]) for m in got])
    # Ids depend on where a client resumed (a replay names its batch A..B#k), so compare what was said, per session.
    histories = {json.dumps({token: startup_of(got, token) for token in sorted(tokens)}) for got in received}
    assert len(histories) == 1, f"every client got the same history: {histories}"
