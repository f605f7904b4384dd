"""``concurrentSessions`` holds across API replicas: creates at the limit take the
keypair's Lease, so two processes racing for the last slots cannot both get one."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiohttp
from kubernetes_asyncio import client

from kubernel_api import keypairs as kp
from kubernel_api.limits import Limits
from kubernel_api.quota import lease_name
from kubernel_testkit.api_client import ApiClient

from .api_process import ApiProcess

LIMIT = 3
LIMITED = kp.Keypair(
    access_key="AKIATESTLIMITED1",
    secret_key="secret-of-limited-0123456789",
    limits=Limits(concurrent_sessions=LIMIT),
)


async def test_twenty_racing_creates_through_two_replicas_get_the_limit_exactly(
    kubeconfig: str, namespace: str, kube: client.ApiClient, operator, tmp_path: Path
) -> None:
    await client.CoreV1Api(kube).create_namespaced_secret(namespace, kp.to_secret(LIMITED))
    for i in range(2):
        (tmp_path / f"api-{i}").mkdir()  # each its own log and image file
    replicas = [ApiProcess(kubeconfig, namespace, tmp_path / f"api-{i}") for i in range(2)]
    for replica in replicas:
        replica.start()
    try:
        async with aiohttp.ClientSession() as http:
            clients = [ApiClient(r.base_url, LIMITED, http) for r in replicas]
            answers = await asyncio.gather(
                *(clients[i % 2].create(f"race-{i:02}", enqueueOnly=True) for i in range(20))
            )
            statuses = Counter(a.status for a in answers)
            assert statuses == {201: LIMIT, 412: 20 - LIMIT}, statuses
            assert all(a.problem_type.endswith("quota-exceeded") for a in answers if a.status == 412)
            listed = await client.CustomObjectsApi(kube).list_namespaced_custom_object(
                "kubernel.io", "v1alpha1", namespace, "kernelsessions"
            )
            assert len(listed["items"]) == LIMIT
            # Every Lease was given back.
            leases = await client.CoordinationV1Api(kube).list_namespaced_lease(namespace)
            assert lease_name(LIMITED.access_key) not in {lease.metadata.name for lease in leases.items}
    finally:
        for replica in replicas:
            replica.stop()
