"""The lifecycle on the test bed's real node: a real kubelet pulls from the local
registry, containerd and runc start real processes, which exit with real codes,
are OOM-killed by the kernel and receive real signals.

The sessions use the ``real/...`` aliases of the tests' image table (no scheduling:
the simulated nodes are tainted, so they land on the real node) and ask for little
CPU and memory, since the real node has what this machine has.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import pytest
from kubernetes_asyncio import client, watch

from kubernel import resource as r
from kubernel_testbed import imagebuild, launcher, node, realnode, settings
from kubernel_testkit.waiting import wait_until

from .sessions import SessionClient, events

SMALL = {"cpu": "500m", "memory": "256Mi"}  # the runner starts IPython: ~1.5 CPU-seconds
STARTUP = [
    ("kernel_enqueued", ""),
    ("kernel_preparing", ""),
    ("kernel_pulling", ""),
    ("kernel_creating", ""),
    ("kernel_started", ""),
]
STARTUP_PRESENT = [
    ("kernel_enqueued", ""),
    ("kernel_preparing", ""),
    ("kernel_creating", ""),
    ("kernel_started", ""),
]


@pytest.fixture(scope="module")
def testbed(kubeconfig: str) -> launcher.Testbed:
    bed = launcher.Testbed(settings.TestbedSettings.from_env())
    if not bed.settings.real_node or str(bed.layout.kubeconfig) != kubeconfig:
        pytest.skip("needs the local test bed's real node (KUBERNEL_REAL_NODE=1, no external KUBECONFIG)")
    return bed


@pytest.fixture
def sessions(kube: client.ApiClient, namespace: str, operator, testbed: launcher.Testbed) -> SessionClient:
    return SessionClient(kube, namespace)


def kubectl(
    testbed: launcher.Testbed, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(testbed.layout.bin / "kubectl"), f"--kubeconfig={testbed.layout.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )


def ctr(testbed: launcher.Testbed, *args: str) -> subprocess.CompletedProcess[str]:
    sock = realnode.node_layout(testbed.layout).containerd_socket
    return subprocess.run(
        ["ctr", f"--address={sock}", "--namespace=k8s.io", *args], capture_output=True, text=True, timeout=60
    )


async def pod_events(core: client.CoreV1Api, namespace: str, pod: str) -> list[client.CoreV1Event]:
    found = (await core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={pod}")).items
    return sorted(found, key=lambda e: int(e.metadata.resource_version))  # the order they were written


async def the_pod(sessions: SessionClient, name: str) -> client.V1Pod:
    async def one() -> client.V1Pod | None:
        pods = await sessions.pods(name)
        return pods[0] if len(pods) == 1 else None

    return await wait_until(one, timeout=30, what=f"the Pod of {name}")


async def test_first_pull_then_an_image_already_present(
    sessions: SessionClient, testbed: launcher.Testbed
) -> None:
    registry = node.registry_address(realnode.node_ports(testbed.layout))
    fresh = "registry.kubernel.test/kubernel/python:fresh"
    imagebuild.retag(registry, "kubernel/python:3.11", "kubernel/python:fresh")
    ctr(testbed, "images", "rm", fresh)  # the node has never pulled it, as far as the kubelet can tell

    first = await sessions.create("pull-real-1", image="real/fresh", resources=SMALL)
    body = await sessions.wait_phase(first, "Running", timeout=120)
    assert events(body) == STARTUP
    pod = await the_pod(sessions, first)
    assert pod.spec.node_name == node.NODE_NAME
    reasons = [
        (e.reason, e.message) for e in await pod_events(sessions.core, sessions.namespace, pod.metadata.name)
    ]
    assert [reason for reason, _ in reasons] == ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
    pulled = dict(reasons)["Pulled"]
    assert pulled.startswith(f'Successfully pulled image "{fresh}" in ') and "Image size: " in pulled

    second = await sessions.create("pull-real-2", image="real/fresh", resources=SMALL)
    body = await sessions.wait_phase(second, "Running", timeout=60)
    assert events(body) == STARTUP_PRESENT
    pod = await the_pod(sessions, second)
    messages = {
        e.reason: e.message for e in await pod_events(sessions.core, sessions.namespace, pod.metadata.name)
    }
    assert "Pulling" not in messages
    assert "already present on machine" in messages["Pulled"]


async def test_a_tag_the_registry_lacks_fails_fast_with_its_words(sessions: SessionClient) -> None:
    started = time.monotonic()
    name = await sessions.create("missing-tag", image="real/missing", resources=SMALL)
    body = await sessions.wait_phase(name, "Terminated", timeout=60)
    assert events(body)[-1] == ("kernel_terminated", "image-pull-failed")
    assert ("kernel_started", "") not in events(body)
    message = body["status"]["message"]
    assert "ErrImagePull" in message and "not found" in message, message
    assert time.monotonic() - started < 30


async def test_a_registry_that_is_down_fails_the_pull(
    sessions: SessionClient, testbed: launcher.Testbed
) -> None:
    testbed.stop_process("registry")
    try:
        name = await sessions.create("registry-down", image="real/missing", resources=SMALL)
        body = await sessions.wait_phase(name, "Terminated", timeout=60)
        assert events(body)[-1] == ("kernel_terminated", "image-pull-failed")
        assert "connection refused" in body["status"]["message"], body["status"]["message"]
    finally:
        realnode.start_registry(testbed, realnode.node_ports(testbed.layout))


@pytest.mark.parametrize(
    ("code", "reason", "result"), [(0, "task-finished", "SUCCESS"), (3, "task-failed", "FAILURE")]
)
async def test_batch_exit_code_from_a_real_process(
    sessions: SessionClient, testbed: launcher.Testbed, code: int, reason: str, result: str
) -> None:
    # The command prints, then waits for a file the test creates through `kubectl exec`
    # once it has read the log: the output is read while the container still exists.
    command = f"echo batch-output-{code}; while [ ! -e /tmp/go ]; do sleep 0.05; done; exit {code}"
    name = await sessions.create(
        f"batch-real-{code}", image="real/python", type="batch", startupCommand=command, resources=SMALL
    )
    await sessions.wait_phase(name, "Running", timeout=60)
    pod = (await the_pod(sessions, name)).metadata.name

    async def logged() -> bool:
        return f"batch-output-{code}" in kubectl(testbed, "-n", sessions.namespace, "logs", pod).stdout

    await wait_until(logged, timeout=30, what="the batch output in the container log")
    assert kubectl(testbed, "-n", sessions.namespace, "exec", pod, "--", "touch", "/tmp/go").returncode == 0
    body = await sessions.wait_phase(name, "Terminated", timeout=60)
    assert events(body)[-1] == ("kernel_terminated", reason)
    assert body["status"]["result"] == result and body["status"]["exitCode"] == code


async def test_memory_over_the_limit_is_oom_killed(sessions: SessionClient) -> None:
    grow = "python3 -c 'b = []\nwhile True: b.append(bytearray(8 << 20))'"
    name = await sessions.create(
        "oom-real",
        image="real/python",
        type="batch",
        startupCommand=grow,
        resources={"cpu": "100m", "memory": "32Mi"},
    )
    body = await sessions.wait_phase(name, "Terminated", timeout=60)
    assert events(body)[-1] == ("kernel_terminated", "oom-killed")
    assert body["status"]["result"] == "FAILURE" and body["status"]["exitCode"] == 137


async def test_restart_runs_a_new_process(sessions: SessionClient, testbed: launcher.Testbed) -> None:
    name = await sessions.create("restart-real", image="real/python", resources=SMALL)
    await sessions.wait_phase(name, "Running", timeout=60)
    first = (await the_pod(sessions, name)).metadata.name
    ns = sessions.namespace

    def exec_(pod: str, *argv: str) -> str:
        done = kubectl(testbed, "-n", ns, "exec", pod, "--", *argv)
        assert done.returncode == 0, done.stderr
        return done.stdout

    # Global state of the old process: a file in its container and its own start time.
    exec_(first, "sh", "-c", "echo state > /tmp/state")
    before = exec_(
        first,
        "python3",
        "-c",
        "import os; print(os.stat('/proc/1').st_ctime, open('/proc/1/cmdline').read())",
    )
    await sessions.patch_spec(name, {"restartCount": 1})

    async def restarted() -> str | None:
        body = await sessions.get(name)
        pods = await sessions.pods(name)
        new = [p.metadata.name for p in pods if p.metadata.labels[r.LABEL_RESTART] == "1"]
        return new[0] if body["status"]["phase"] == "Running" and new else None

    second = await wait_until(restarted, timeout=60, what="the restarted kernel running")
    assert second != first
    assert exec_(second, "sh", "-c", "test -e /tmp/state && echo kept || echo gone").strip() == "gone"
    after = exec_(
        second,
        "python3",
        "-c",
        "import os; print(os.stat('/proc/1').st_ctime, open('/proc/1/cmdline').read())",
    )
    assert after != before and "kubernel_runner" in after


async def test_destroy_sends_sigterm_within_the_grace_period(
    sessions: SessionClient, kube: client.ApiClient
) -> None:
    name = await sessions.create("sigterm-real", image="real/python", resources=SMALL)
    await sessions.wait_phase(name, "Running", timeout=60)
    pod = (await the_pod(sessions, name)).metadata.name
    core = client.CoreV1Api(kube)
    listed = await core.list_namespaced_pod(sessions.namespace, field_selector=f"metadata.name={pod}")
    final: dict = {}

    async def watch_until_terminated() -> None:
        stream = watch.Watch()
        async for event in stream.stream(
            core.list_namespaced_pod,
            sessions.namespace,
            field_selector=f"metadata.name={pod}",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=60,
        ):
            for cs in event["object"].status.container_statuses or []:
                if cs.state.terminated is not None:
                    final["terminated"] = cs.state.terminated
                    stream.stop()
                    return

    watcher = asyncio.create_task(watch_until_terminated())
    await sessions.patch_spec(name, {"terminationRequested": "user-requested"})
    await asyncio.wait_for(watcher, 60)
    terminated = final["terminated"]
    # kernel.py exits 0 on SIGTERM; a process killed at the end of the grace period has 137.
    assert terminated.exit_code == 0 and terminated.reason == "Completed", terminated
    body = await sessions.wait_phase(name, "Terminated")
    assert events(body)[-1] == ("kernel_terminated", "user-requested")


async def test_a_pod_deleted_behind_our_back_ends_the_session(
    sessions: SessionClient, testbed: launcher.Testbed
) -> None:
    name = await sessions.create("deleted-real", image="real/python", resources=SMALL)
    await sessions.wait_phase(name, "Running", timeout=60)
    pod = (await the_pod(sessions, name)).metadata.name
    assert kubectl(testbed, "-n", sessions.namespace, "delete", "pod", pod, "--wait=false").returncode == 0
    body = await sessions.wait_phase(name, "Terminated", timeout=60)
    assert events(body)[-1] == ("kernel_terminated", "self-terminated")


async def test_kernels_resolve_each_other_and_reach_services(
    sessions: SessionClient, testbed: launcher.Testbed
) -> None:
    name = await sessions.create("dns-real", image="real/python", clusterSize=2, resources=SMALL)
    await sessions.wait_phase(name, "Running", timeout=90)
    pods = {p.metadata.labels[r.LABEL_INDEX]: p for p in await sessions.pods(name)}
    main, sub = pods["0"].metadata.name, pods["1"]
    probe = (
        "import socket\n"
        f"print(socket.gethostbyname('sub1.{name}'))\n"
        "print(socket.gethostbyname('kubernetes.default.svc.cluster.local'))\n"
        f"socket.create_connection(('kubernetes.default', 443), timeout=5).close()\n"
        "print('api-reachable')\n"
    )
    done = kubectl(testbed, "-n", sessions.namespace, "exec", main, "--", "python3", "-c", probe)
    assert done.returncode == 0, done.stderr
    sub_ip, api_ip, reached = done.stdout.split()
    assert sub_ip == sub.status.pod_ip
    assert api_ip == node.KUBERNETES_SERVICE_IP and reached == "api-reachable"


async def test_a_sandbox_the_node_cannot_create_fails_within_the_start_deadline(
    sessions: SessionClient, testbed: launcher.Testbed
) -> None:
    runtime_class = {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": {"name": "kubernel-test-broken"},
        "handler": "no-such-handler",
    }
    assert kubectl(testbed, "apply", "-f", "-", stdin=json.dumps(runtime_class)).returncode == 0
    try:
        name = await sessions.create("sandbox-real", image="real/broken-runtime", resources=SMALL)
        body = await sessions.wait_phase(name, "Terminated", timeout=60)
    finally:
        kubectl(testbed, "delete", "runtimeclass", "kubernel-test-broken", "--wait=false")
    assert events(body)[-1] == ("kernel_terminated", "failed-to-start")
    message = body["status"]["message"]
    assert "FailedCreatePodSandBox" in message and "no-such-handler" in message, message
    assert ("kernel_started", "") not in events(body)
