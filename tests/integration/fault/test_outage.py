"""kube-apiserver stops for 10 s in the middle of a run: quick 503s during the
outage, and the operator and the API recover by themselves afterwards."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from kubernetes_asyncio import client

from kubernel_api import keypairs as kp
from kubernel_testbed import launcher
from kubernel_testbed import settings as testbed_settings
from kubernel_testbed.node import SIMULATED_SCHEDULING
from kubernel_testkit.api_client import ApiClient
from kubernel_testkit.waiting import wait_until

from ..api_process import ApiProcess
from ..operator_process import OperatorProcess
from ..test_api_stream import is_startup, startup_of, stream, until_started

# The test bed's own plain Pods, not kernels: the namespace enforces no Pod Security Standard.
pytestmark = pytest.mark.pod_security("privileged")

OUTAGE_SECONDS = 10
KUBE_TIMEOUT = 3  # the API's per-call timeout in this test


async def control_plane_runs_pods(kube: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    await core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "probe"},
            "spec": {
                "containers": [{"name": "main", "image": "registry.example/lablup/python:3.6-ubuntu18.04"}],
                **SIMULATED_SCHEDULING,
            },
        },
    )

    async def running() -> bool:
        return (await core.read_namespaced_pod("probe", namespace)).status.phase == "Running"

    await wait_until(running, timeout=120, interval=0.5, what="a plain Pod running again after the outage")


@pytest.mark.skipif(launcher.external_cluster_reachable(), reason="stops the local test bed's kube-apiserver")
async def test_kube_apiserver_outage(
    kubeconfig: str,
    kube: client.ApiClient,
    own_namespace: str,
    own_keypairs: dict[str, kp.Keypair],
    own_operator: OperatorProcess,
    tmp_path,
) -> None:
    testbed = launcher.Testbed(testbed_settings.TestbedSettings.from_env())
    server = ApiProcess(kubeconfig, own_namespace, tmp_path, {"KUBERNEL_API_KUBE_TIMEOUT": str(KUBE_TIMEOUT)})
    server.start()
    try:
        async with aiohttp.ClientSession() as http:
            alice = ApiClient(server.base_url, own_keypairs["alice"], http)
            assert (await alice.create("before", maxWaitSeconds=30)).body["status"] == "RUNNING"
            async with stream(alice) as events:
                await alice.create("racing", enqueueOnly=True)  # starts as the API server goes away
                testbed.stop_apiserver()
                stopped = time.monotonic()
                try:
                    during = []
                    for attempt in range(3):
                        began = time.monotonic()
                        answer = await alice.create(f"during-{attempt}", enqueueOnly=True)
                        during.append((answer, time.monotonic() - began))
                    remaining = OUTAGE_SECONDS - (time.monotonic() - stopped)
                    if remaining > 0:
                        await asyncio.sleep(remaining)  # the outage itself, not synchronisation
                finally:
                    testbed.start_apiserver()
                for answer, took in during:
                    assert answer.status == 503, answer.body
                    assert answer.headers["Content-Type"].startswith("application/problem+json")
                    assert answer.body["type"].endswith("/service-unavailable"), answer.body
                    assert took < KUBE_TIMEOUT + 2, f"a request hung for {took:.1f}s"
                # The test bed's scheduler and kubelet simulator reconnect with their own
                # backoff (client-go: up to ~30 s); sessions cannot start before they do.
                await control_plane_runs_pods(kube, own_namespace)
                # Neither of our processes was restarted: both reconnected on their own.
                assert server.proc.poll() is None and own_operator.proc.poll() is None
                after = await alice.create("after", maxWaitSeconds=60)
                assert after.status == 201 and after.body["status"] == "RUNNING", after.body
                seen = await until_started(events, {"racing", "after"}, timeout=60)
            for token in ("racing", "after"):
                assert is_startup(startup_of(seen, token)), (token, seen)
            for token in ("before", "racing", "after"):
                info = await alice.call("GET", f"/kernel/{token}")
                assert info.status == 200 and info.body["status"] == "RUNNING", (token, info.body)
            assert (await alice.call("GET", "/kernel/during-0")).status == 404, "a 503 created nothing"
    finally:
        server.stop()
