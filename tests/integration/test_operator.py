"""The operator on the real control plane: every path of a KernelSession's life."""

from __future__ import annotations

import re

import aiohttp
import pytest
from kubernetes_asyncio import client

from kubernel import resource as r
from kubernel_testkit.waiting import wait_until

from .images import fresh_image
from .sessions import ACCESS_KEY, SessionClient, events, seqs

STARTUP = [
    ("kernel_enqueued", ""),
    ("kernel_preparing", ""),
    ("kernel_pulling", ""),
    ("kernel_creating", ""),
    ("kernel_started", ""),
]


@pytest.fixture
def sessions(kube: client.ApiClient, namespace: str, operator) -> SessionClient:
    return SessionClient(kube, namespace)


async def test_session_starts_with_the_full_lifecycle(sessions: SessionClient) -> None:
    name = await sessions.create("start-01", image=fresh_image(), resources={"cpu": "500m", "memory": "2Gi"})
    body = await sessions.wait_phase(name, "Running")
    assert events(body) == STARTUP
    assert seqs(body) == [1, 2, 3, 4, 5]
    status = body["status"]
    assert status["memoryLimitKib"] == 2 * 1024 * 1024
    assert status["startedAt"] and status["scheduledAt"] and status["createdAt"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Scheduled": "True", "Ready": "True"}
    [pod] = await sessions.pods(name)
    assert pod.metadata.owner_references[0].name == name
    assert pod.metadata.labels[r.LABEL_MANAGED_BY] == "kubernel"
    assert pod.spec.containers[0].resources.limits == {
        "cpu": "500m",
        "memory": "2Gi",
        "ephemeral-storage": "1Gi",
    }


async def test_alias_resolves_and_a_present_image_is_not_pulled(sessions: SessionClient) -> None:
    image = fresh_image()
    first = await sessions.create("pull-first", image=image)
    await sessions.wait_phase(first, "Running")
    [pod] = await sessions.pods(first)
    node = pod.spec.node_name
    # Pin the second session's Pod to the same node through the scheduler's own view:
    # every node that has pulled the image is equally good; try until one lands there.
    second = await sessions.create("pull-second", image=image)
    body = await sessions.wait_phase(second, "Running")
    [pod2] = await sessions.pods(second)
    names = [e for e, _ in events(body)]
    if pod2.spec.node_name == node:
        assert "kernel_pulling" not in names
    assert names[-1] == "kernel_started"


async def test_image_pull_failure_ends_the_session(sessions: SessionClient) -> None:
    name = await sessions.create("pull-fail", image="registry.invalid/nothing:1")
    body = await sessions.wait_phase(name, "Terminated")
    assert events(body)[-1] == ("kernel_terminated", "image-pull-failed")
    assert ("kernel_started", "") not in events(body)
    assert "ErrImagePull" in body["status"]["message"] or "ImagePullBackOff" in body["status"]["message"]
    await wait_until(_no_pods(sessions, name), timeout=30, what="Pods removed")


def _no_pods(sessions: SessionClient, name: str):
    async def check() -> bool:
        return not await sessions.pods(name)

    return check


@pytest.mark.parametrize(
    ("code", "reason", "result"),
    [
        ("0", "task-finished", "SUCCESS"),
        ("7", "task-failed", "FAILURE"),
    ],
)
async def test_batch_session_ends_with_its_exit_code(
    sessions: SessionClient, code: str, reason: str, result: str
) -> None:
    name = await sessions.create(
        f"batch-{code}",
        image=fresh_image(),
        type="batch",
        startupCommand="python job.py",
        environ={"KUBERNEL_SIM_EXIT_CODE": code, "KUBERNEL_SIM_RUN_FOR": "300ms"},
    )
    body = await sessions.wait_phase(name, "Terminated")
    last = body["status"]["lifecycle"][-1]
    assert (last["event"], last["reason"], last["result"]) == ("kernel_terminated", reason, result)
    outcome = "kernel_success" if code == "0" else "kernel_failure"
    assert [e for e, _ in events(body)][:-1] == [*(e for e, _ in STARTUP), outcome]
    assert body["status"]["exitCode"] == int(code)
    assert body["status"]["result"] == result


async def test_a_batch_session_past_its_run_time_limit_ends(sessions: SessionClient) -> None:
    """A batch job that would run a minute, with a limit of 2 s (its own batchTimeoutSeconds;
    the operator's default is a day): it ends exec-timeout, a failure, and its Pod is deleted."""
    name = await sessions.create(
        "batch-limit",
        image=fresh_image(),
        type="batch",
        startupCommand="python job.py",
        environ={"KUBERNEL_SIM_EXIT_CODE": "0", "KUBERNEL_SIM_RUN_FOR": "60s"},
        batchTimeoutSeconds=2,
    )
    body = await sessions.wait_phase(name, "Terminated", timeout=30)
    last = body["status"]["lifecycle"][-1]
    assert (last["event"], last["reason"], last["result"]) == ("kernel_terminated", "exec-timeout", "FAILURE")
    assert "ran longer than 2s" in body["status"]["message"]

    async def pod_going() -> bool:  # deleted (its graceful end may take a while on a loaded node)
        return all(p.metadata.deletion_timestamp for p in await sessions.pods(name))

    await wait_until(pod_going, timeout=30, what="the timed-out job's Pod deleted")


async def test_batch_pod_runs_the_startup_command(sessions: SessionClient) -> None:
    name = await sessions.create(
        "batch-cmd", image=fresh_image(), type="batch", startupCommand="echo hi && exit 0"
    )
    await sessions.wait_phase(name, "Running")
    [pod] = await sessions.pods(name)
    assert pod.spec.containers[0].command == ["/bin/sh", "-c", "echo hi && exit 0"]
    assert pod.spec.restart_policy == "Never"


async def test_restart_replays_startup_without_terminating(sessions: SessionClient) -> None:
    name = await sessions.create("restart-01", image=fresh_image())
    before = await sessions.wait_phase(name, "Running")
    [old_pod] = await sessions.pods(name)
    await sessions.patch_spec(name, {"restartCount": 1})

    async def restarted() -> dict | None:
        body = await sessions.get(name)
        status = body["status"]
        return body if status["observedRestart"] == 1 and status["phase"] == "Running" else None

    body = await wait_until(restarted, timeout=30, what="restart finished")
    new_entries = [(e["event"], e["reason"]) for e in body["status"]["lifecycle"] if e["restart"] == 1]
    assert new_entries[0][0] == "kernel_preparing"
    assert new_entries[-1] == ("kernel_started", "restarting")
    assert all(reason == "restarting" for _, reason in new_entries)
    assert "kernel_terminated" not in [e for e, _ in events(body)]
    assert seqs(body) == list(range(1, len(seqs(body)) + 1))
    assert body["status"]["startedAt"] == before["status"]["startedAt"]  # age keeps counting

    async def old_pod_gone() -> bool:
        return old_pod.metadata.name not in {p.metadata.name for p in await sessions.pods(name)}

    await wait_until(old_pod_gone, timeout=30, what="old Pod removed")


async def test_user_delete_records_termination_before_the_resource_goes(
    sessions: SessionClient, kube: client.ApiClient, namespace: str
) -> None:
    name = await sessions.create("delete-01", image=fresh_image())
    await sessions.wait_phase(name, "Running")
    await sessions.delete(name)
    await sessions.wait_gone(name)
    core = client.CoreV1Api(kube)
    ks_events = await core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=KernelSession,involvedObject.name={name}"
    )
    reasons = [e.reason for e in ks_events.items]
    assert "KernelTerminated" in reasons and "KernelStarted" in reasons
    terminated = next(e for e in ks_events.items if e.reason == "KernelTerminated")
    assert "user-requested" in terminated.message
    assert not await sessions.pods(name)


async def test_pod_deleted_from_outside_ends_the_session(sessions: SessionClient) -> None:
    name = await sessions.create("outside-01", image=fresh_image())
    await sessions.wait_phase(name, "Running")
    [pod] = await sessions.pods(name)
    await sessions.core.delete_namespaced_pod(pod.metadata.name, sessions.namespace)
    body = await sessions.wait_phase(name, "Terminated")
    assert events(body)[-1] == ("kernel_terminated", "self-terminated")


async def test_idle_session_times_out(sessions: SessionClient) -> None:
    name = await sessions.create("idle-01", image=fresh_image(), idleTimeoutSeconds=2)
    await sessions.wait_phase(name, "Running")
    body = await sessions.wait_phase(name, "Terminated", timeout=20)
    assert events(body)[-1] == ("kernel_terminated", "idle-timeout")


async def test_unschedulable_session_fails_to_start(sessions: SessionClient) -> None:
    name = await sessions.create("huge-01", image=fresh_image(), resources={"cpu": "1000", "memory": "1Gi"})
    body = await sessions.wait_phase(name, "Terminated", timeout=30)
    # Enqueued (its Pod was made), waiting for a node (once), never started: cancelled, then
    # terminated with Backend.AI's pending-timeout and the scheduler's words.
    assert events(body) == [
        ("kernel_enqueued", ""),
        ("kernel_pending", "no-available-instances"),
        ("kernel_cancelled", "pending-timeout"),
        ("kernel_terminated", "pending-timeout"),
    ]
    assert "Insufficient cpu" in body["status"]["message"]


async def test_multi_kernel_session_gets_pods_and_a_headless_service(sessions: SessionClient) -> None:
    # A policy says the namespace's kernels are isolated (as the chart's does): the session
    # then gets a policy of its own that lets its kernels reach each other.
    networking = client.NetworkingV1Api(sessions.core.api_client)
    isolating = {
        "metadata": {"name": "isolated", "labels": {r.LABEL_KERNELS_ISOLATED: "true"}},
        "spec": {"podSelector": {"matchLabels": {"kubernel.io/nothing": "x"}}, "policyTypes": ["Ingress"]},
    }
    await networking.create_namespaced_network_policy(sessions.namespace, isolating)
    name = await sessions.create("cluster-01", image=fresh_image(), clusterSize=3)
    body = await sessions.wait_phase(name, "Running")
    pods = sorted(await sessions.pods(name), key=lambda p: p.metadata.name)
    assert [p.spec.hostname for p in pods] == ["main", "sub1", "sub2"]
    assert {p.spec.subdomain for p in pods} == {name}
    assert [p.metadata.labels[r.LABEL_ROLE] for p in pods] == ["main", "sub", "sub"]
    service = await sessions.core.read_namespaced_service(name, sessions.namespace)
    assert service.spec.cluster_ip == "None"
    assert len(body["status"]["pods"]) == 3
    assert [e for e, _ in events(body)][-1] == "kernel_started"
    # Its kernels may reach each other: a NetworkPolicy of its own, gone with the session.
    policy = await networking.read_namespaced_network_policy(f"{name}-kernels", sessions.namespace)
    assert policy.spec.pod_selector.match_labels == {r.LABEL_SESSION: name, r.LABEL_COMPONENT: "kernel"}
    assert policy.metadata.owner_references[0].name == name
    await sessions.delete(name)
    await sessions.wait_gone(name)

    async def policy_gone() -> bool:
        names = [
            p.metadata.name
            for p in (await networking.list_namespaced_network_policy(sessions.namespace)).items
        ]
        return f"{name}-kernels" not in names

    await wait_until(policy_gone, timeout=30, what="the session's NetworkPolicy removed")


async def test_pod_creation_that_keeps_failing_ends_the_session(
    sessions: SessionClient, kube: client.ApiClient
) -> None:
    """A broken admission webhook answers every Pod creation with an error (500): retried
    with backoff, KUBERNEL_POD_CREATE_ATTEMPTS (6) times, then the session ends, saying why."""
    admission = client.AdmissionregistrationV1Api(kube)
    webhook = f"broken-{sessions.namespace}"
    await admission.create_validating_webhook_configuration(
        {
            "metadata": {"name": webhook},
            "webhooks": [
                {
                    "name": "broken.kubernel.test",
                    "clientConfig": {"url": "https://127.0.0.1:1/validate"},  # nothing listens there
                    "rules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ],
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": sessions.namespace}},
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 1,
                }
            ],
        }
    )
    try:
        name = await sessions.create("webhook-01", image=fresh_image())
        body = await sessions.wait_phase(name, "Terminated", timeout=120)
    finally:
        await admission.delete_validating_webhook_configuration(webhook)
    assert events(body)[-1] == ("kernel_terminated", "failed-to-create")
    assert "Pod creation failed 6 times: 500" in body["status"]["message"]
    assert "failed calling webhook" in body["status"]["message"]
    assert not await sessions.pods(name)


async def test_mounts_existing_claim_and_fails_on_a_missing_one(sessions: SessionClient) -> None:
    # No provisioner here: a PersistentVolume pre-bound to the claim stands in for one.
    pv = f"pv-{sessions.namespace}"
    await sessions.core.create_persistent_volume(
        {
            "metadata": {"name": pv},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/tmp/x"},
                "claimRef": {"namespace": sessions.namespace, "name": "mydata"},
                "persistentVolumeReclaimPolicy": "Retain",
            },
        }
    )
    await sessions.core.create_namespaced_persistent_volume_claim(
        sessions.namespace,
        {
            "metadata": {
                "name": "mydata",
                "labels": {"kubernel.io/access-key": ACCESS_KEY},
            },  # the owner's folder
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
                "volumeName": pv,
                "storageClassName": "",
            },
        },
    )

    async def bound() -> bool:
        claim = await sessions.core.read_namespaced_persistent_volume_claim("mydata", sessions.namespace)
        return claim.status.phase == "Bound"

    try:
        await wait_until(bound, timeout=30, what="claim mydata Bound")
        ok = await sessions.create(
            "mount-ok",
            image=fresh_image(),
            mounts=[{"name": "mydata"}, {"name": "mydata", "path": ".local/lib", "readOnly": True}],
        )
        await sessions.wait_phase(ok, "Running")
    finally:
        await sessions.core.delete_persistent_volume(pv)
    [pod] = await sessions.pods(ok)
    mounts = {m.mount_path for m in pod.spec.containers[0].volume_mounts}
    assert mounts == {"/home/work", "/tmp", "/home/work/mydata", "/home/work/.local/lib"}  # scratch too
    assert {
        m.mount_path: bool(m.read_only)
        for m in pod.spec.containers[0].volume_mounts
        if m.name.startswith("vfolder")
    } == {"/home/work/mydata": False, "/home/work/.local/lib": True}
    claims = {v.persistent_volume_claim.claim_name for v in pod.spec.volumes if v.persistent_volume_claim}
    assert claims == {"mydata"}

    missing = await sessions.create("mount-missing", image=fresh_image(), mounts=[{"name": "nosuch"}])
    body = await sessions.wait_phase(missing, "Terminated")
    assert events(body) == [
        ("kernel_cancelled", "volume-not-found"),
        ("kernel_terminated", "volume-not-found"),
    ]
    assert "nosuch" in body["status"]["message"]
    # Another owner's session naming the claim (made with kubectl, past the API): refused the same way.
    foreign = await sessions.create(
        "mount-foreign", image=fresh_image(), access_key="AKIASOMEONEELSE01", mounts=[{"name": "mydata"}]
    )
    body = await sessions.wait_phase(foreign, "Terminated")
    assert events(body)[-1] == ("kernel_terminated", "volume-not-found")
    assert "not the owner's" in body["status"]["message"] and not await sessions.pods(foreign)


async def _all_started(sessions: SessionClient, names: list[str], timeout: float) -> list[dict]:
    async def started() -> list[dict] | None:
        bodies = [await sessions.get(n) for n in names]
        done = [b for b in bodies if b and (b.get("status") or {}).get("phase") == "Running"]
        return bodies if len(done) == len(names) else None

    try:
        return await wait_until(started, timeout=timeout, what=f"{len(names)} sessions Running", interval=0.5)
    except AssertionError as exc:
        from collections import Counter

        bodies = [await sessions.get(n) for n in names]
        seen = Counter(
            ((b or {}).get("status") or {}).get("phase", "no status")
            + "/"
            + ((b or {}).get("status") or {}).get("reason", "")
            for b in bodies
        )
        raise AssertionError(f"{exc}; phases: {dict(seen)}") from None


def _assert_clean_log(body: dict) -> None:
    names = [e for e, _ in events(body)]
    assert names in ([e for e, _ in STARTUP], [e for e, _ in STARTUP if e != "kernel_pulling"]), names
    assert seqs(body) == list(range(1, len(names) + 1))


async def test_fifty_sessions_at_once_all_start(sessions: SessionClient) -> None:
    import asyncio

    image = fresh_image()
    names = await asyncio.gather(*(sessions.create(f"many-{i:02d}", image=image) for i in range(50)))
    bodies = await _all_started(sessions, list(names), timeout=120)
    for body in bodies:
        _assert_clean_log(body)


async def test_operator_killed_during_creations_loses_and_repeats_nothing(
    sessions: SessionClient, operator
) -> None:
    import asyncio

    image = fresh_image()
    creating = [asyncio.create_task(sessions.create(f"crash-{i:02d}", image=image)) for i in range(30)]
    await asyncio.gather(*creating[:10])
    operator.kill()
    names = await asyncio.gather(*creating)
    operator.start()
    bodies = await _all_started(sessions, list(names), timeout=120)
    for name, body in zip(names, bodies, strict=True):
        _assert_clean_log(body)
        pods = await sessions.pods(name)
        assert len(pods) == 1, f"{name} has {len(pods)} Pods"


@pytest.mark.parametrize(
    "spec",
    [
        {"environ": {"1BAD": "x"}},
        {"clusterSize": 0},
        {"resources": {"cpu": "lots"}},
        {"type": "notebook"},
    ],
)
async def test_the_api_server_rejects_invalid_sessions(
    kube: client.ApiClient, namespace: str, crds, spec
) -> None:
    custom = client.CustomObjectsApi(kube)
    body = {
        "apiVersion": r.API_VERSION,
        "kind": r.KIND,
        "metadata": {"name": "invalid"},
        "spec": {"sessionId": "valid-token", "owner": {"accessKey": "AK"}, "image": "python:3.6", **spec},
    }
    with pytest.raises(client.ApiException) as caught:
        await custom.create_namespaced_custom_object(r.GROUP, r.VERSION, namespace, r.PLURAL, body)
    assert caught.value.status == 422


async def test_the_api_server_rejects_a_bad_token(kube: client.ApiClient, namespace: str, crds) -> None:
    custom = client.CustomObjectsApi(kube)
    for token in ("abc", "-leading", "has space", "x" * 65):
        body = {
            "apiVersion": r.API_VERSION,
            "kind": r.KIND,
            "metadata": {"name": "invalid"},
            "spec": {"sessionId": token, "owner": {"accessKey": "AK"}, "image": "python:3.6"},
        }
        with pytest.raises(client.ApiException) as caught:
            await custom.create_namespaced_custom_object(r.GROUP, r.VERSION, namespace, r.PLURAL, body)
        assert caught.value.status == 422, token


async def test_the_operator_exports_its_metrics(sessions: SessionClient, operator) -> None:
    """Its own /metrics (on the metrics port): sessions by phase, lifecycle entries, the
    time to start, reconciles, build info and the process collector."""
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"

    async def scrape() -> str:
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 200 and resp.content_type == "text/plain"
            return await resp.text()

    def value(text: str, sample: str) -> float:
        found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
        return float(found[1]) if found else 0.0

    before = await scrape()
    name = await sessions.create("metrics-01", image=fresh_image())
    await sessions.wait_phase(name, "Running")

    async def counted() -> bool:
        text = await scrape()
        return (
            value(text, 'kubernel_operator_lifecycle_entries_total{event="kernel_started"}')
            > value(before, 'kubernel_operator_lifecycle_entries_total{event="kernel_started"}')
            and value(text, 'kubernel_operator_sessions{phase="Running"}') >= 1
        )

    await wait_until(counted, timeout=10, what="the start counted")
    text = await scrape()
    assert value(text, "kubernel_operator_session_start_seconds_count") > value(
        before, "kubernel_operator_session_start_seconds_count"
    )
    assert value(text, "kubernel_operator_reconcile_duration_seconds_count") > 0
    assert "kubernel_operator_status_write_conflicts_total" in text
    assert 'kubernel_operator_sessions{phase="Terminated"}' in text  # every phase, zeros too
    assert re.search(r'^kubernel_operator_build_info\{.*version="[^"]+".*\} 1\.0$', text, re.M)
    assert value(text, "process_resident_memory_bytes") > 0
