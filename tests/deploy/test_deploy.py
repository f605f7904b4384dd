"""The production path: the chart's operator and API as real Pods from the service image,
on the real node, behind Traefik; the published client through the ingress; streams
through a real proxy; Pods deleted mid-work; upgrade; uninstall.

The tests run in file order on one install (the last one uninstalls it). Sessions that
only exercise the control plane use ``sim/python`` (simulated nodes); the client and
the stream-timing tests use ``python:3.6``, a real kernel on the real node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from kubernel import resource as r
from kubernel_api import keypairs as kp
from kubernel_api.limits import Limits
from kubernel_testbed import deploy
from kubernel_testkit.api_client import ApiClient
from kubernel_testkit.waiting import wait_until

from ..integration.sse import EventStream, Message
from ..integration.test_api_stream import is_startup, startup_of, stream
from ..integration.test_backendai_client import CLIENT_PYTHON, SCENARIO, run_client
from .conftest import Installed

# The install (helm --wait) and the kill test's waits are minutes at worst on 2 cores.
pytestmark = pytest.mark.timeout(900)

NODE = "kubernel-node-0"
SERVICE_UID = 10001
HEARTBEAT_SECONDS = 15  # the chart's default api.config.heartbeatSeconds
IDLE_SECONDS = 125


def root_of(installed: Installed) -> kp.Keypair:
    """The chart's bootstrap superadmin, as the tests' signing client wants it."""
    d = installed.deployment
    return kp.Keypair(access_key=d.access_key, secret_key=d.secret_key, role=kp.Role.SUPERADMIN)


@contextlib.asynccontextmanager
async def client_for(base_url: str, keypair: kp.Keypair) -> AsyncIterator[ApiClient]:
    async with aiohttp.ClientSession() as http:
        yield ApiClient(base_url, keypair, http)


def service_pods(installed: Installed) -> list[dict]:
    selector = "app.kubernetes.io/instance=kubernel,app.kubernetes.io/component in (api,operator)"
    return installed.get("pods", "-l", selector)["items"]


def api_pods(installed: Installed) -> list[dict]:
    return [
        p for p in service_pods(installed) if p["metadata"]["labels"]["app.kubernetes.io/component"] == "api"
    ]


def ready(pod: dict) -> bool:
    return (
        pod["status"].get("phase") == "Running"
        and not pod["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
    )


def sessions_of(installed: Installed) -> dict[str, dict]:
    items = installed.get("kernelsessions", namespace=deploy.SESSION_NAMESPACE)["items"]
    return {s["spec"]["sessionId"]: s for s in items}


# -- the install ---------------------------------------------------------------------
def test_the_services_run_as_non_root_pods_on_the_real_node(installed: Installed) -> None:
    pods = service_pods(installed)
    roles = Counter(p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pods)
    assert roles == {"api": 2, "operator": 1}, roles
    for pod in pods:
        assert ready(pod) and pod["spec"]["nodeName"] == NODE, (pod["metadata"]["name"], pod["status"])
        (container,) = pod["spec"]["containers"]
        assert container["image"] == installed.deployment.image  # pinned by digest, from the local registry
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert container.get("livenessProbe"), pod["metadata"]["name"]
    # What the processes really are, asked inside the running containers.
    probe = (
        "import os\ntry:\n    open('/app/written', 'w')\nexcept OSError as e:\n    w = e.strerror\n"
        "else:\n    w = 'writable'\nprint(os.getuid(), os.getgid(), w)"
    )
    for deployment_name in ("kubernel-api", "kubernel-operator"):
        out = installed.kubectl(
            "-n", deploy.NAMESPACE, "exec", f"deploy/{deployment_name}", "--", "python", "-c", probe
        ).stdout.split(maxsplit=2)
        assert out == [str(SERVICE_UID), str(SERVICE_UID), "Read-only file system\n"], (deployment_name, out)


# -- the published client, through the ingress ----------------------------------------
async def test_the_published_client_through_the_ingress(installed: Installed) -> None:
    assert CLIENT_PYTHON.exists(), (
        "the client's virtualenv is missing: run `make test` (it builds .venv-bai19)"
    )
    env = {**os.environ, **installed.deployment.env()}
    env.pop("PYTHONPATH", None)
    code, out, err = await run_client(
        [str(CLIENT_PYTHON), str(SCENARIO), "through-ingress", "python:3.6", "--execute"], env
    )
    assert code == 0, err[-3000:]
    seen = json.loads(out)
    assert seen["hello"]["version"] == "v4.20190615"
    assert seen["created"]["created"] is True and seen["info"]["status"] == "RUNNING"
    # The API's Pod reached the kernel's runner through the kernels' NetworkPolicy (enforced
    # on the real node by kube-router).
    assert seen["executed"]["status"] == "finished" and ["stdout", "42\n"] in seen["executed"]["console"]
    assert is_startup([e["event"] for e in seen["events"]], late=True), seen["events"]
    restart = [e["event"] for e in seen["restart_events"]]
    assert restart[-1] == "kernel_started" and {e["data"]["reason"] for e in seen["restart_events"]} == {
        "restarting"
    }
    assert seen["destroy"]["stats"]["status"] == "terminated"
    session = sessions_of(installed)["through-ingress"]
    assert session["status"]["phase"] == "Terminated"


# -- event streams through a real proxy -------------------------------------------------
async def timed_messages(
    events: EventStream, into: dict[tuple[str, str], float], until: str, token: str
) -> None:
    while (message := await events.next(120)) is not None:
        into.setdefault((message.event, message.data["sessionId"]), time.monotonic())
        if message.event == until and message.data["sessionId"] == token:
            return
    raise AssertionError("the stream ended early")


async def test_the_ingress_delivers_each_event_within_a_second(installed: Installed) -> None:
    """The same stream read straight from an API Pod and through Traefik: each event
    arrives through the proxy at most 1 s after it arrives directly (a buffering proxy
    holds the first events until the buffer fills or the stream ends)."""
    api_pod = api_pods(installed)[0]
    direct_url = f"http://{api_pod['status']['podIP']}:8090"
    root = root_of(installed)
    direct_times: dict[tuple[str, str], float] = {}
    proxied_times: dict[tuple[str, str], float] = {}
    async with (
        client_for(direct_url, root) as direct,
        client_for(installed.deployment.endpoint, root) as proxied,
    ):
        async with (
            stream(direct, {"sessionId": "*"}) as direct_events,
            stream(proxied, {"sessionId": "*"}) as proxied_events,
        ):
            assert proxied_events.response.headers["Content-Type"].startswith("text/event-stream")
            readers = [
                asyncio.create_task(timed_messages(s, into, "kernel_started", "timing"))
                for s, into in ((direct_events, direct_times), (proxied_events, proxied_times))
            ]
            assert (await proxied.create("timing", "python:3.6", enqueueOnly=True)).status == 201
            await asyncio.wait_for(asyncio.gather(*readers), 120)
            assert (await proxied.call("DELETE", "/kernel/timing")).status == 200
    mine = {key for key in direct_times if key[1] == "timing"}
    assert {event for event, _ in mine} >= {"kernel_preparing", "kernel_creating", "kernel_started"}
    lags = {event: proxied_times[(event, token)] - direct_times[(event, token)] for event, token in mine}
    assert all(lag <= 1.0 for lag in lags.values()), lags
    # The run was long enough for buffering to show: the first event came well before the last.
    assert direct_times[("kernel_started", "timing")] - direct_times[("kernel_preparing", "timing")] > 1.0


async def test_an_idle_stream_through_the_ingress_lives_past_two_minutes(installed: Installed) -> None:
    """A user's stream that sees nothing for over two minutes gets its heartbeats through
    the proxy, and is still open for the next event."""
    user = kp.generate(kp.Role.USER, "default", ("default",), Limits(), datetime.now(UTC))
    await apply_keypair(installed, user)
    for pod in api_pods(installed):  # either replica may serve the stream
        async with client_for(f"http://{pod['status']['podIP']}:8090", user) as direct:

            async def user_known() -> bool:
                return (await direct.call("GET", "/kernel/none-yet")).status == 404  # 401 while unknown

            await wait_until(user_known, timeout=30, what=f"{pod['metadata']['name']} knows the new keypair")
    async with client_for(installed.deployment.endpoint, user) as idle:
        async with stream(idle, {"sessionId": "*"}) as events:
            heartbeats = 0
            deadline = time.monotonic() + IDLE_SECONDS
            while (left := deadline - time.monotonic()) > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        line = await events.response.content.readline()
                        assert line, f"the stream ended after {IDLE_SECONDS - left:.0f} s idle"
                        text = line.decode().strip()
                        assert not text or text.startswith(":"), f"an event on an idle stream: {text!r}"
                        heartbeats += text == ": heartbeat"
            assert heartbeats >= IDLE_SECONDS // HEARTBEAT_SECONDS - 1, heartbeats
            assert (await idle.create("after-idle", "sim/python", enqueueOnly=True)).status == 201
            first = await events.next(30)
            assert (
                first is not None
                and first.event == "kernel_enqueued"
                and first.data["sessionId"] == "after-idle"
            )
        assert (await idle.call("DELETE", "/kernel/after-idle")).status == 200


async def apply_keypair(installed: Installed, keypair: kp.Keypair) -> None:
    secret = kp.to_secret(keypair)
    secret.setdefault("metadata", {})["namespace"] = deploy.KEYPAIR_NAMESPACE
    proc = await asyncio.create_subprocess_exec(
        str(installed.bed.layout.bin / "kubectl"),
        f"--kubeconfig={installed.bed.layout.kubeconfig}",
        "-n",
        deploy.KEYPAIR_NAMESPACE,
        "create",
        "-f",
        "-",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate(json.dumps(secret, default=str).encode())
    assert proc.returncode == 0, err.decode()


# -- Pods deleted in the middle of the work --------------------------------------------
CREATIONS, STREAMS = 20, 10


async def create_until_answered(client: ApiClient, token: str, deadline: float) -> None:
    """POST /kernel until an answer: a create is idempotent by token, so a retry after a
    replica went away mid-request finds the session instead of making a second one."""
    while True:
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            answer = await client.create(token, "sim/python", enqueueOnly=True)
            if answer.status in (200, 201):
                return
            assert answer.status in (502, 503, 504), (token, answer.status, answer.body)
        assert time.monotonic() < deadline, f"no answer for {token}"
        await asyncio.sleep(0.2)  # a retry's pace, not synchronisation


RETRYABLE = (502, 503, 504)
"""What a proxy answers while a replica leaves: the client tries again."""


async def resuming_reader(client: ApiClient, into: list[Message], connected: asyncio.Event) -> int:
    """Read the stream until cancelled; when it ends or breaks, reopen it with the last id
    seen (as EventSource does). ``connected`` is set at the first 200. Returns how many
    times it resumed. Any answer but 200 or a proxy's 502-504 fails the test."""
    resumed = 0
    try:
        while True:
            url = client.url("/stream/kernel/_/events", {"sessionId": "*"})
            headers = client.signed_headers("GET", str(url.relative()))
            if into:
                headers["Last-Event-ID"] = into[-1].id or ""
            try:
                async with client.http.get(
                    url, headers=headers, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)
                ) as resp:
                    if resp.status == 200:
                        connected.set()
                        events = EventStream(resp)
                        while (message := await events.next(3600)) is not None:
                            into.append(message)
                    else:
                        assert resp.status in RETRYABLE, (resp.status, await resp.text())
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
                pass  # the replica went away mid-stream
            resumed += 1
            await asyncio.sleep(0.2)  # a reconnect's pace, as EventSource's retry
    except asyncio.CancelledError:
        return resumed


async def test_operator_and_an_api_replica_deleted_in_the_middle(installed: Installed) -> None:
    tokens = [f"survive-{i:02}" for i in range(CREATIONS)]
    before = {p["metadata"]["name"] for p in service_pods(installed)}
    victims = [
        p["metadata"]["name"]
        for p in service_pods(installed)
        if p["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    ] + [api_pods(installed)[0]["metadata"]["name"]]
    received: list[list[Message]] = [[] for _ in range(STREAMS)]
    async with client_for(installed.deployment.endpoint, root_of(installed)) as root:
        connected = [asyncio.Event() for _ in range(STREAMS)]
        readers = [
            asyncio.create_task(resuming_reader(root, into, ready_))
            for into, ready_ in zip(received, connected, strict=True)
        ]
        await asyncio.wait_for(
            asyncio.gather(*(c.wait() for c in connected)), 30
        )  # subscribed before creating
        deadline = time.monotonic() + 180
        first = [asyncio.create_task(create_until_answered(root, t, deadline)) for t in tokens[:10]]
        await asyncio.gather(*first)
        deleting = await asyncio.create_subprocess_exec(
            str(installed.bed.layout.bin / "kubectl"),
            f"--kubeconfig={installed.bed.layout.kubeconfig}",
            "-n",
            deploy.NAMESPACE,
            "delete",
            "pod",
            *victims,
            "--wait=false",
        )
        assert await deleting.wait() == 0
        await asyncio.gather(*(create_until_answered(root, t, deadline) for t in tokens[10:]))

        def all_back() -> bool:
            pods = service_pods(installed)
            fresh = [p for p in pods if p["metadata"]["name"] not in before and ready(p)]
            return len([p for p in pods if ready(p)]) == 3 and len(fresh) == 2

        async def replaced() -> bool:
            return await asyncio.to_thread(all_back)

        await wait_until(
            replaced, timeout=120, what="the Deployments replaced the deleted Pods", interval=0.5
        )

        def every_client_saw_every_start() -> bool:
            return all(
                {m.data["sessionId"] for m in got if m.event == "kernel_started"} >= set(tokens)
                for got in received
            )

        async def started() -> bool:
            for reader in readers:
                if reader.done():
                    reader.result()  # a reader that got a wrong answer fails the test now
            return every_client_saw_every_start()

        await wait_until(started, timeout=180, what="every stream saw every session start")
        for reader in readers:
            reader.cancel()
        resumes = await asyncio.gather(*readers)
    # Streams of the deleted replica were cut and resumed (Traefik spreads the ten over both).
    assert sum(resumes) >= 1, "no stream was cut: the deleted API replica served none"
    sessions = sessions_of(installed)
    for token in tokens:
        lifecycle = [entry["event"] for entry in sessions[token]["status"]["lifecycle"]]
        assert lifecycle.count("kernel_started") == 1, (token, lifecycle)
    pods = installed.get(
        "pods", "-l", f"{r.LABEL_MANAGED_BY}={r.MANAGED_BY}", namespace=deploy.SESSION_NAMESPACE
    )["items"]
    per_session = Counter(
        p["metadata"]["labels"][r.LABEL_SESSION]
        for p in pods
        if p["metadata"]["labels"].get(r.LABEL_SESSION, "").startswith("survive-")
    )
    assert len(per_session) == CREATIONS and set(per_session.values()) == {1}, per_session
    for got in received:
        ids = [m.id for m in got]
        assert len(ids) == len(set(ids)), "an event arrived twice"
        for token in tokens:
            assert is_startup(startup_of(got, token)), (token, [(m.event, m.data["sessionId"]) for m in got])
    histories = {json.dumps({t: startup_of(got, t) for t in tokens}) for got in received}
    assert len(histories) == 1, histories
    async with client_for(installed.deployment.endpoint, root_of(installed)) as root:
        for token in tokens:
            assert (await root.call("DELETE", f"/kernel/{token}")).status == 200


# -- upgrade and uninstall ----------------------------------------------------------------
async def test_helm_upgrade_keeps_the_keypair_and_the_sessions(installed: Installed) -> None:
    async with client_for(installed.deployment.endpoint, root_of(installed)) as root:
        assert (await root.create("kept", "sim/python")).status == 201
    session = sessions_of(installed)["kept"]
    session_pods = ("pods", "-l", f"{r.LABEL_SESSION}={session['metadata']['name']}")
    pod_before = installed.get(*session_pods, namespace=deploy.SESSION_NAMESPACE)["items"]
    api_before = {p["metadata"]["name"] for p in api_pods(installed)}
    secret_before = installed.get("secret", deploy.BOOTSTRAP_SECRET, namespace=deploy.KEYPAIR_NAMESPACE)[
        "data"
    ]
    # A changed setting of the API's Pods, so the upgrade really rolls them.
    result = installed.helm(
        "upgrade",
        deploy.RELEASE,
        str(deploy.CHART),
        "--reuse-values",
        "--set",
        "api.config.heartbeatSeconds=14",
        "--wait",
        "--timeout=5m",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        installed.get("secret", deploy.BOOTSTRAP_SECRET, namespace=deploy.KEYPAIR_NAMESPACE)["data"]
        == secret_before
    )
    api_after = {p["metadata"]["name"] for p in api_pods(installed) if ready(p)}
    assert api_after and not api_after & api_before, "the API's Pods were replaced"
    after = sessions_of(installed)["kept"]
    assert after["metadata"]["uid"] == session["metadata"]["uid"] and after["status"]["phase"] == "Running"
    pod_after = installed.get(*session_pods, namespace=deploy.SESSION_NAMESPACE)["items"]
    assert [p["metadata"]["uid"] for p in pod_after] == [p["metadata"]["uid"] for p in pod_before]
    async with client_for(installed.deployment.endpoint, root_of(installed)) as root:  # the old credentials
        answer = await root.call("GET", "/kernel/kept")
        assert answer.status == 200 and answer.body["status"] == "RUNNING", answer.body


def test_helm_uninstall_then_the_documented_clean_up_leaves_nothing_behind(installed: Installed) -> None:
    kept = sessions_of(installed)["kept"]  # a live session (from the upgrade test)
    result = installed.helm("uninstall", deploy.RELEASE, "--wait", "--timeout=120s")
    assert result.returncode == 0, result.stdout + result.stderr
    # With the operator gone, nothing ends the session: it keeps its finalizer and its Pod.
    left = installed.get("kernelsession", kept["metadata"]["name"], namespace=deploy.SESSION_NAMESPACE)
    assert r.FINALIZER in left["metadata"]["finalizers"]
    # The keypairs' namespace outlives the release (the users' credentials), and so does the
    # sessions' (its sessions still hold their finalizer): kept by Helm.
    for kept_namespace in (deploy.KEYPAIR_NAMESPACE, deploy.SESSION_NAMESPACE):
        assert installed.kubectl("get", "namespace", kept_namespace, "-o", "name").stdout.strip()
    deploy.undeploy(installed.bed)  # the README's clean-up
    namespaces = installed.kubectl(
        "get",
        "namespace",
        deploy.NAMESPACE,
        deploy.SESSION_NAMESPACE,
        deploy.KEYPAIR_NAMESPACE,
        "--ignore-not-found",
        "-o",
        "name",
    ).stdout
    assert namespaces == "", "the namespaces are gone, so nothing in them kept a finalizer"
    everywhere = json.loads(installed.kubectl("get", "kernelsessions", "-A", "-o", "json").stdout)["items"]
    assert not [s for s in everywhere if s["spec"]["owner"]["accessKey"] == installed.deployment.access_key]
    pods = json.loads(installed.kubectl("get", "pods", "-A", "-o", "json").stdout)["items"]
    assert not [p for p in pods if p["metadata"]["namespace"] in (deploy.NAMESPACE, deploy.SESSION_NAMESPACE)]
    assert installed.helm("status", deploy.RELEASE).returncode != 0, "the release is gone"
