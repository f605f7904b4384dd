"""Warm pools on the real node: a KernelPool keeps kernels started with no session in them;
a create of its image claims one, bound to the session (its token, its environ) and resized
in place to its limits; what cannot be served warm starts cold and says why (docs/pools.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from kubernel import resource as r
from kubernel_api.keys import SETTINGS
from kubernel_testkit.api_client import ApiClient
from kubernel_testkit.waiting import wait_until

from .conftest import RunningApi
from .test_code import execute, text

pytestmark = pytest.mark.integration

POOL = "py"
SMALL = {"cpu": "500m", "mem": "256m"}
CGROUP_LIMITS = (
    "import pathlib; r = lambda p: pathlib.Path('/sys/fs/cgroup', p).read_text().strip(); "
    "print(r('cpu/cpu.cfs_quota_us'), r('memory/memory.limit_in_bytes'))"
)


async def make_pool(kube: client.ApiClient, namespace: str, replicas: int = 2, **spec: Any) -> None:
    body = {
        "apiVersion": r.API_VERSION,
        "kind": r.POOL_KIND,
        "metadata": {"name": POOL},
        "spec": {
            "image": "real/python",
            "replicas": replicas,
            "resources": {"cpu": "500m", "memory": "256Mi"},
            **spec,
        },
    }
    await client.CustomObjectsApi(kube).create_namespaced_custom_object(
        r.GROUP, r.VERSION, namespace, r.POOL_PLURAL, body
    )


async def pool_status(kube: client.ApiClient, namespace: str) -> dict:
    body = await client.CustomObjectsApi(kube).get_namespaced_custom_object(
        r.GROUP, r.VERSION, namespace, r.POOL_PLURAL, POOL
    )
    return body.get("status") or {}


async def wait_ready(kube: client.ApiClient, namespace: str, ready: int, timeout: float = 90) -> dict:
    async def filled() -> dict | None:
        status = await pool_status(kube, namespace)
        return status if status.get("ready") == ready and status.get("starting") == 0 else None

    return await wait_until(filled, timeout=timeout, what=f"{ready} warm kernels in the pool")


async def pool_pods(kube: client.ApiClient, namespace: str) -> list[client.V1Pod]:
    found = await client.CoreV1Api(kube).list_namespaced_pod(
        namespace, label_selector=f"{r.LABEL_POOL}={POOL}"
    )
    return [p for p in found.items if p.metadata.deletion_timestamp is None]


def session_of(api: RunningApi, token: str, who: str = "alice") -> dict:
    name = r.session_name(api.keypairs[who].access_key, token)
    body = api.sessions.get((api.app[SETTINGS].namespace, name))
    assert body is not None
    return body


async def create(client_: ApiClient, token: str, **config: Any) -> None:
    created = await client_.create(token, image="real/python", config={"resources": SMALL, **config})
    assert created.status == 201 and created.body["status"] == "RUNNING", created.body


async def test_a_session_claims_a_warm_kernel_bound_to_it_alone(
    api: RunningApi, kube: client.ApiClient, namespace: str
) -> None:
    await make_pool(kube, namespace)
    status = await wait_ready(kube, namespace, 2)
    assert status["replicas"] == 2 and status["selector"] == f"{r.LABEL_POOL}={POOL}"
    warm = await pool_pods(kube, namespace)
    assert {p.metadata.owner_references[0].kind for p in warm} == {r.POOL_KIND}
    assert all(r.LABEL_SESSION not in p.metadata.labels for p in warm)
    address = f"{warm[0].status.pod_ip}:2001"
    async with aiohttp.ClientSession() as http:  # a warm kernel runs nobody's code
        async with http.get(f"http://{address}/health") as resp:
            assert resp.status == 200 and await resp.json() == {"status": "warm"}
        for token in ("", "Bearer " + "x" * 64):
            async with http.post(
                f"http://{address}/execute",
                json={"mode": "query", "code": "1"},
                headers={"Authorization": token},
            ) as resp:
                assert resp.status in (401, 503), resp.status
        async with http.post(
            f"http://{address}/bind",
            json={"token": "y" * 40},
            headers={"Authorization": "Bearer " + "z" * 64},
        ) as resp:
            assert resp.status == 401  # only the operator holds this Pod's bind token

    alice = api.client("alice")
    await create(alice, "warm-1", environ={"WARM": "yes"})
    body = session_of(api, "warm-1")
    assert body["status"]["pool"] == POOL and body["status"]["coldStartReason"] == ""
    started = [e for e in body["status"]["lifecycle"] if e["event"] == "kernel_started"]
    assert started and started[0]["reason"] == "warm-pool"
    (pod,) = body["status"]["pods"]
    assert pod in {p.metadata.name for p in warm}
    result = await execute(
        alice,
        "warm-1",
        "import os; print(os.environ['WARM'], os.environ['BACKENDAI_SESSION_ID'], os.getcwd())",
    )
    assert text(result["console"], "stdout") == "yes warm-1 /home/work\n"
    claimed = await client.CoreV1Api(kube).read_namespaced_pod(pod, namespace)
    assert claimed.metadata.labels[r.LABEL_SESSION] == body["metadata"]["name"]
    assert r.LABEL_POOL not in claimed.metadata.labels
    assert [o.uid for o in claimed.metadata.owner_references] == [body["metadata"]["uid"]]

    # The pool fills again; another user's session gets another kernel, with its own token.
    await wait_ready(kube, namespace, 2)
    bob = api.client("bob")
    await create(bob, "warm-2")
    other = session_of(api, "warm-2", "bob")
    assert other["status"]["pool"] == POOL and other["status"]["pods"] != [pod]
    stolen = await execute(
        alice, "warm-1", "print(open('/proc/self/environ','rb').read().count(b'KUBERNEL'))"
    )
    assert text(stolen["console"], "stdout") == "0\n"  # nothing of the runner's settings reaches the code

    await alice.call("DELETE", "/kernel/warm-1")

    async def gone() -> bool:
        try:
            await client.CoreV1Api(kube).read_namespaced_pod(pod, namespace)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    await wait_until(gone, timeout=30, what="the claimed kernel deleted with its session")


async def test_larger_limits_are_given_in_place_and_concurrent_claims_get_distinct_kernels(
    api: RunningApi, kube: client.ApiClient, namespace: str
) -> None:
    await make_pool(kube, namespace)
    await wait_ready(kube, namespace, 2)
    alice = api.client("alice")
    await asyncio.gather(
        create(alice, "big-1", resources={"cpu": 1, "mem": "512m"}),
        create(alice, "big-2", resources={"cpu": 1, "mem": "256m"}),
    )
    first, second = session_of(api, "big-1"), session_of(api, "big-2")
    assert first["status"]["pool"] == second["status"]["pool"] == POOL
    assert first["status"]["pods"] != second["status"]["pods"]
    result = await execute(alice, "big-1", CGROUP_LIMITS)
    assert text(result["console"], "stdout") == f"100000 {512 * 1024 * 1024}\n"
    result = await execute(alice, "big-2", CGROUP_LIMITS)
    assert text(result["console"], "stdout") == f"100000 {256 * 1024 * 1024}\n"


async def test_what_cannot_start_warm_starts_cold_and_says_why(
    api: RunningApi, kube: client.ApiClient, namespace: str
) -> None:
    await make_pool(kube, namespace, replicas=1)
    await wait_ready(kube, namespace, 1)
    alice = api.client("alice")
    await create(alice, "cold-env", environ={"PYTHONHASHSEED": "0"})
    body = session_of(api, "cold-env")
    assert body["status"]["pool"] == ""
    assert "PYTHONHASHSEED" in body["status"]["coldStartReason"]
    result = await execute(alice, "cold-env", "import sys; print(sys.flags.hash_randomization)")
    assert text(result["console"], "stdout") == "0\n"  # the interpreter started with it
    status = await pool_status(kube, namespace)
    assert status["misses"] >= 1 and "PYTHONHASHSEED" in status["lastMissReason"]
    assert status["ready"] == 1  # the warm kernel was left for someone else

    # More memory than the node has: the kubelet refuses the resize (Infeasible), the kernel
    # is discarded, and the session goes cold (where the scheduler then says why it waits).
    (offered,) = await pool_pods(kube, namespace)
    created = await alice.create(
        "cold-huge", image="real/python", maxWaitSeconds=1, config={"resources": {"cpu": 0.5, "mem": "40g"}}
    )
    assert created.status == 201, created.body

    async def refused() -> dict | None:
        body = session_of(api, "cold-huge")
        return body if (body.get("status") or {}).get("coldStartReason") else None

    body = await wait_until(refused, timeout=30, what="the refused resize recorded")
    assert (
        body["status"]["coldStartReason"] == "the node cannot resize the warm kernel to the session's limits"
    )

    async def discarded() -> bool:
        return offered.metadata.name not in {p.metadata.name for p in await pool_pods(kube, namespace)}

    await wait_until(discarded, timeout=30, what="the kernel that could not be resized discarded")
    await alice.call("DELETE", "/kernel/cold-huge")
    await wait_ready(kube, namespace, 1)

    # A deleted warm kernel is replaced; an empty pool sends the next create cold at once.
    (warm,) = await pool_pods(kube, namespace)
    await client.CoreV1Api(kube).delete_namespaced_pod(warm.metadata.name, namespace, grace_period_seconds=0)

    async def replaced() -> bool:
        pods = await pool_pods(kube, namespace)
        return bool(pods) and warm.metadata.name not in {p.metadata.name for p in pods}

    await wait_until(replaced, timeout=30, what="the deleted warm kernel replaced")
    await client.CustomObjectsApi(kube).patch_namespaced_custom_object_scale(
        r.GROUP,
        r.VERSION,
        namespace,
        r.POOL_PLURAL,
        POOL,
        {"spec": {"replicas": 0}},
        _content_type="application/merge-patch+json",
    )
    await wait_until(lambda: _none_left(kube, namespace), timeout=30, what="the pool scaled to zero")
    await create(alice, "cold-empty")
    body = session_of(api, "cold-empty")
    assert body["status"]["pool"] == "" and body["status"]["coldStartReason"] == "no ready kernel in the pool"


async def _none_left(kube: client.ApiClient, namespace: str) -> bool:
    return not await pool_pods(kube, namespace) and (await pool_status(kube, namespace)).get("replicas") == 0
