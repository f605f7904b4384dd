"""Smoke tests of the local control plane: nodes, and the simulated kubelet's
sequence for a Pod (see cluster/kwok/stages.yaml for the conventions)."""

from __future__ import annotations

import copy

import pytest
from kubernetes_asyncio import client

from kubernel_testbed.node import SIMULATED_SCHEDULING
from kubernel_testkit.waiting import wait_until

from .images import fresh_image

# The test bed's own plain Pods, not kernels: the namespace enforces no Pod Security Standard.
pytestmark = pytest.mark.pod_security("privileged")


def pod_manifest(
    name: str,
    image: str,
    *,
    node: str | None = None,
    env: dict[str, str] | None = None,
    restart: str = "Never",
) -> dict:
    spec: dict = {
        "restartPolicy": restart,
        "containers": [
            {"name": "main", "image": image, "env": [{"name": k, "value": v} for k, v in (env or {}).items()]}
        ],
        "terminationGracePeriodSeconds": 30,
    }
    spec.update(copy.deepcopy(SIMULATED_SCHEDULING))  # the simulated nodes are tainted
    if node:
        spec["nodeSelector"]["kubernetes.io/hostname"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def event_reasons(core: client.CoreV1Api, namespace: str, pod: str) -> list[str]:
    events = await core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=Pod,involvedObject.name={pod}"
    )
    # Each of these Events is written once; etcd's revision orders their creation.
    ordered = sorted(events.items, key=lambda e: int(e.metadata.resource_version))
    return [e.reason for e in ordered]


def is_ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


async def test_simulated_nodes_offer_cpu_memory_and_gpus(kube: client.ApiClient) -> None:
    nodes = (await client.CoreV1Api(kube).list_node(label_selector="type=kwok")).items
    assert len(nodes) >= 2
    for node in nodes:
        assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
        for resource in ("cpu", "memory", "nvidia.com/gpu"):
            assert node.status.allocatable.get(resource) not in (None, "0")


async def test_pod_goes_through_the_kubelet_sequence_and_pulls_only_once_per_node(
    kube: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube)
    image = fresh_image()
    await core.create_namespaced_pod(namespace, pod_manifest("first", image, node="kwok-node-0"))

    pending = await core.read_namespaced_pod("first", namespace)
    assert pending.status.phase == "Pending"

    async def ready() -> client.V1Pod | None:
        pod = await core.read_namespaced_pod("first", namespace)
        return pod if is_ready(pod) else None

    pod = await wait_until(ready, timeout=30, what="Pod first Running and Ready")
    assert pod.status.phase == "Running"
    assert pod.status.container_statuses[0].state.running is not None

    async def sequence() -> list[str] | None:
        reasons = await event_reasons(core, namespace, "first")
        return reasons if "Started" in reasons else None

    reasons = await wait_until(sequence, timeout=10, what="the Started Event")
    assert reasons == ["Scheduled", "Pulling", "Pulled", "Created", "Started"]

    # Same image, same node: the kubelet finds it there and does not pull.
    await core.create_namespaced_pod(namespace, pod_manifest("second", image, node="kwok-node-0"))

    async def second_started() -> list[str] | None:
        reasons = await event_reasons(core, namespace, "second")
        return reasons if "Started" in reasons else None

    reasons = await wait_until(second_started, timeout=30, what="Pod second started")
    assert reasons == ["Scheduled", "Pulled", "Created", "Started"]
    node = await core.read_node("kwok-node-0")
    assert any(image in (i.names or []) for i in node.status.images or [])


async def test_unpullable_image_fails_with_err_image_pull(kube: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    await core.create_namespaced_pod(namespace, pod_manifest("broken", "registry.invalid/no/such:image"))

    async def backoff() -> str | None:
        pod = await core.read_namespaced_pod("broken", namespace)
        statuses = pod.status.container_statuses or []
        waiting = statuses[0].state.waiting if statuses else None
        return waiting.reason if waiting and waiting.reason == "ImagePullBackOff" else None

    await wait_until(backoff, timeout=30, what="ImagePullBackOff")

    async def backoff_event() -> list[str] | None:  # the Event may be posted after the status
        reasons = await event_reasons(core, namespace, "broken")
        return reasons if "BackOff" in reasons else None

    reasons = await wait_until(backoff_event, timeout=30, what="the BackOff Event")
    assert reasons == ["Scheduled", "Pulling", "Failed", "BackOff"]
    events = await core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=broken,reason=Failed"
    )
    assert "ErrImagePull" in events.items[0].message
    assert events.items[0].type == "Warning"


async def test_marked_pod_exits_with_its_code(kube: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    await core.create_namespaced_pod(
        namespace,
        pod_manifest(
            "fails", fresh_image(), env={"KUBERNEL_SIM_EXIT_CODE": "3", "KUBERNEL_SIM_RUN_FOR": "500ms"}
        ),
    )
    await core.create_namespaced_pod(
        namespace, pod_manifest("succeeds", fresh_image(), env={"KUBERNEL_SIM_EXIT_CODE": "0"})
    )

    async def finished(name: str) -> client.V1Pod | None:
        pod = await core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    failed = await wait_until(lambda: finished("fails"), timeout=30, what="Pod fails to finish")
    assert failed.status.phase == "Failed"
    assert failed.status.container_statuses[0].state.terminated.exit_code == 3
    assert "Started" in await event_reasons(core, namespace, "fails")

    succeeded = await wait_until(lambda: finished("succeeds"), timeout=30, what="Pod succeeds to finish")
    assert succeeded.status.phase == "Succeeded"
    assert succeeded.status.container_statuses[0].state.terminated.exit_code == 0


async def test_deletion_is_graceful(kube: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    await core.create_namespaced_pod(namespace, pod_manifest("doomed", fresh_image()))

    async def ready() -> bool:
        return is_ready(await core.read_namespaced_pod("doomed", namespace))

    await wait_until(ready, timeout=30, what="Pod doomed Ready")
    await core.delete_namespaced_pod("doomed", namespace)
    terminating = await core.read_namespaced_pod("doomed", namespace)
    assert terminating.metadata.deletion_timestamp is not None  # not gone at once: graceful

    async def gone() -> bool:
        try:
            await core.read_namespaced_pod("doomed", namespace)
            return False
        except client.ApiException as exc:
            return exc.status == 404

    await wait_until(gone, timeout=30, what="Pod doomed removed")

    async def killing() -> list[str] | None:
        reasons = await event_reasons(core, namespace, "doomed")
        return reasons if "Killing" in reasons else None

    # KWOK records Events asynchronously, so the Killing Event may land just after the Pod is gone.
    reasons = await wait_until(killing, timeout=10, what="the Killing Event")
    assert reasons[-1] == "Killing"
