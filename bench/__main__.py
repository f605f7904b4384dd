"""make bench: Kubernel against plain Pods on the local control plane.

python -m bench [--out DIR] [--quick]

Starts a test bed of its own (simulated kubelet delays set to zero, separate state
directory, stopped at the end), then measures, all in one run:
  1. baseline: plain Pods created through the Kubernetes API until Running and Ready;
  2. Kubernel: POST /kernel/create to its response and to kernel_started on an SSE
     stream, one at a time (alternating with the plain Pods, so both see the same
     machine) and 200 at once, each as a ratio to the baseline; and the
     kube-apiserver requests one creation of each costs;
  3. SSE fan-out: 1,000 subscribers on one API process while 200 sessions start;
  4. steady state: operator and API memory with 1,000 live sessions.
Prints a table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import resource
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from kubernetes_asyncio import client, config, watch

from kubernel import resource as r
from kubernel_api import keypairs as kp
from kubernel_testbed.launcher import Testbed, say
from kubernel_testbed.node import PYTHON_IMAGE, SIMULATED_SCHEDULING
from kubernel_testbed.settings import NodeShape, SimulatedDelays, TestbedSettings
from kubernel_testkit.api_client import ApiClient
from kubernel_testkit.processes import REPO, ServiceProcess, free_port
from kubernel_testkit.waiting import wait_until

from .profile import profiled
from .report import (
    Burst,
    Latency,
    Target,
    histogram_buckets,
    histogram_quantile,
    per_item,
    ratio,
    request_counts,
    table,
)
from .sse import Keys, LoadClient, StreamReader, build_sseload

IMAGE = "registry.example/lablup/python:3.6-ubuntu18.04"
# python:3.6 runs on the simulated nodes; real/python on the real node, from its registry.
IMAGES_FILE = json.dumps(
    {
        "allowedRegistries": ["registry.example"],
        "scheduling": SIMULATED_SCHEDULING,
        "aliases": {
            "python:3.6": {"image": IMAGE},
            "real/python": {"image": PYTHON_IMAGE, "command": [], "runner": True, "scheduling": {}},
            # The same image, pooled (the warm measurements); a tenth of a CPU reserved per
            # kernel, as the dev table does, so the pool and a session fit the real node.
            "real/warm": {
                "image": PYTHON_IMAGE,
                "command": [],
                "runner": True,
                "scheduling": {},
                "guarantee": {"cpu": "10%"},
            },
        },
    }
)
WARM_POOL = {"cpu": "500m", "memory": "256Mi"}
WARM_REPLICAS = 2
REAL_RESOURCES = {"cpu": "100m", "memory": "64Mi"}
NAMESPACE = "bench"


@dataclass(frozen=True)
class BenchSettings:
    """How much each phase does."""

    counted: int = 10
    """Creations whose kube-apiserver requests are counted (plain Pods, then sessions)."""
    sequential: int = 40
    """Creations measured one at a time, a plain Pod and a session alternately."""
    real_sequential: int = 10
    """The same on the real node (real pulls are done before: the image is present)."""
    burst: int = 1000
    """Creations started at once (baseline and Kubernel)."""
    subscribers: tuple[int, ...] = (1000, 10_000)
    """SSE clients on one API process in each round of the fan-out phase."""
    fanout_sessions: int = 100
    """Sessions started while the subscribers listen."""
    fanout_rate: float = 5.0
    """Sessions created per second meanwhile: a steady stream of lifecycle events, below
    what saturates the control plane, so that the delay measured is the fan-out's."""
    live_sessions: int = 10_000
    """Sessions running at the end of the scale phase (its figures: memory, idle CPU)."""
    wave: int = 1000
    """Sessions created per wave of the scale phase."""

    @classmethod
    def quick(cls) -> BenchSettings:
        return cls(
            counted=5,
            sequential=10,
            real_sequential=4,
            burst=50,
            subscribers=(100, 500),
            fanout_sessions=20,
            live_sessions=400,
            wave=200,
        )


# -- processes ---------------------------------------------------------------------
def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) / 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler:
    """The peak RSS of a process while a phase runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, rss_mb(pid)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb(self.pid))
            await asyncio.sleep(0.2)

    def stop(self) -> float:
        self.task.cancel()
        self.peak = max(self.peak, rss_mb(self.pid))
        return self.peak


def services(kubeconfig: str, work: Path) -> tuple[ServiceProcess, ServiceProcess, str, str]:
    images = work / "images.yaml"
    images.write_text(IMAGES_FILE)
    common = {**os.environ, "KUBECONFIG": kubeconfig, "KUBERNEL_IMAGES": str(images)}
    health, port, metrics_port, operator_metrics = free_port(), free_port(), free_port(), free_port()
    operator = ServiceProcess(
        "operator",
        ["kubernel_operator"],
        {
            **common,
            "KUBERNEL_NAMESPACES": NAMESPACE,
            "KUBERNEL_OPERATOR_HEALTH_HOST": "127.0.0.1",
            "KUBERNEL_OPERATOR_HEALTH_PORT": str(health),
            "KUBERNEL_OPERATOR_METRICS_PORT": str(operator_metrics),
        },
        work / "operator.log",
        f"http://127.0.0.1:{health}/healthz",
    )
    base_url = f"http://127.0.0.1:{port}"
    api = ServiceProcess(
        "API",
        ["kubernel_api", "serve"],
        {
            **common,
            "KUBERNEL_API_HOST": "127.0.0.1",
            "KUBERNEL_API_PORT": str(port),
            "KUBERNEL_API_METRICS_PORT": str(metrics_port),
            "KUBERNEL_API_NAMESPACE": NAMESPACE,
            "KUBERNEL_API_MAX_WAIT": "900",  # 1,000 at once: the last start after minutes
            # One keypair stands for thousands of users here: the per-keypair limits would
            # measure themselves (docs/security.md has what they cost).
            "KUBERNEL_API_RATE_LIMIT": "100000000",
            "KUBERNEL_API_STREAMS_PER_KEYPAIR": "100000",
            "KUBERNEL_API_SESSIONS_PER_KEYPAIR": "1000000",
        },
        work / "api.log",
        base_url + "/readyz",
    )
    return operator, api, base_url, f"http://127.0.0.1:{metrics_port}/metrics"


# -- the Kubernetes side -------------------------------------------------------------
class PodsReady:
    """One watch over the namespace: when each Pod was first seen Running and Ready."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self.core, self.ready, self.waiters = core, {}, {}
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        """List, then watch from there; on any interruption list again (nothing is missed)."""
        while True:
            try:
                listed = await self.core.list_namespaced_pod(NAMESPACE)
                for pod in listed.items:
                    self._seen(pod)
                async for event in watch.Watch().stream(
                    self.core.list_namespaced_pod,
                    NAMESPACE,
                    resource_version=listed.metadata.resource_version,
                    timeout_seconds=300,
                ):
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._seen(event["object"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a broken watch is listed again
                say(f"pod watch interrupted ({exc!r}); listing again")
                await asyncio.sleep(0.2)

    def _seen(self, pod: client.V1Pod) -> None:
        name = pod.metadata.name
        if (
            name not in self.ready
            and pod.status.phase == "Running"
            and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        ):
            self.ready[name] = time.perf_counter()
            waiter = self.waiters.pop(name, None)
            if waiter and not waiter.done():
                waiter.set_result(self.ready[name])

    def wait(self, name: str) -> asyncio.Future[float]:
        future = asyncio.get_running_loop().create_future()
        if name in self.ready:
            future.set_result(self.ready[name])
        else:
            self.waiters[name] = future
        return future

    def stop(self) -> None:
        if self.task:
            self.task.cancel()


async def api_requests(kube: client.ApiClient) -> Counter[str]:
    """Requests kube-apiserver has served so far, by verb and resource (its /metrics)."""
    response = await kube.call_api("/metrics", "GET", auth_settings=["BearerToken"], _preload_content=False)
    async with response:
        return request_counts(await response.text())


def plain_pod(name: str) -> dict:
    return {
        "metadata": {"name": name, "labels": {"bench": "plain"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "main",
                    "image": IMAGE,
                    "command": ["sleep", "infinity"],
                    "resources": {
                        "requests": {"cpu": "1", "memory": "1Gi"},
                        "limits": {"cpu": "1", "memory": "1Gi"},
                    },
                }
            ],
            **SIMULATED_SCHEDULING,
        },
    }


async def plain_burst(core: client.CoreV1Api, pods: PodsReady, settings: BenchSettings) -> Burst:
    say(f"baseline: {settings.burst} plain Pods at once")
    names = [f"plain-burst-{i}" for i in range(settings.burst)]
    began = time.perf_counter()
    await asyncio.gather(*(core.create_namespaced_pod(NAMESPACE, plain_pod(n)) for n in names))
    done = await asyncio.wait_for(asyncio.gather(*(pods.wait(n) for n in names)), 300)
    return Burst(settings.burst, max(done) - began)


async def delete_plain_pods(core: client.CoreV1Api) -> None:
    await core.delete_collection_namespaced_pod(
        NAMESPACE, label_selector="bench=plain", grace_period_seconds=0
    )
    await until(lambda: _count_pods(core, "bench=plain"), 0, "plain Pods deleted")


async def _count_pods(core: client.CoreV1Api, selector: str) -> int:
    return len((await core.list_namespaced_pod(NAMESPACE, label_selector=selector)).items)


async def until(measure, expected: int, what: str, timeout: float = 300) -> None:
    async def reached() -> bool:
        return await measure() == expected

    await wait_until(reached, timeout=timeout, what=what, interval=0.5)


async def delete_sessions(custom: client.CustomObjectsApi) -> None:
    await custom.delete_collection_namespaced_custom_object(r.GROUP, r.VERSION, NAMESPACE, r.PLURAL)

    async def remaining() -> int:
        listed = await custom.list_namespaced_custom_object(r.GROUP, r.VERSION, NAMESPACE, r.PLURAL)
        return len(listed["items"])

    await until(remaining, 0, "sessions deleted")


def real_pod(name: str) -> dict:
    """A plain Pod of the kernel image on the real node (no scheduling: the simulated nodes are tainted)."""
    return {
        "metadata": {"name": name, "labels": {"bench": "real"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "main",
                    "image": PYTHON_IMAGE,
                    "command": ["sleep", "infinity"],  # not the runner
                    "resources": {"requests": REAL_RESOURCES, "limits": REAL_RESOURCES},
                }
            ],
        },
    }


async def real_node(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, bai: ApiClient, settings: BenchSettings
) -> dict:
    """Create -> started on the real node, one at a time, a plain Pod and a session
    alternately; each is removed before the next (the node has this machine's CPUs)."""
    pods = PodsReady(core)
    await pods.start()
    say(
        f"real node: {settings.real_sequential} plain Pods and {settings.real_sequential} sessions, alternating"
    )
    plain_s, session_s, first_result_s = [], [], []
    for i in range(-1, settings.real_sequential):  # -1: a warm-up pair, not counted (the first pull)
        name, token = f"real-plain-{i + 1}", f"real-{i + 1:03}"
        began = time.perf_counter()
        await core.create_namespaced_pod(NAMESPACE, real_pod(name))
        ready = await asyncio.wait_for(pods.wait(name), 120) - began
        await core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
        began = time.perf_counter()
        answer = await bai.call(
            "POST",
            "/kernel/create",
            body={
                "clientSessionToken": token,
                "image": "real/python",
                "config": {"resources": {"cpu": 0.5, "mem": "256m"}},
            },
        )
        if answer.status != 201 or answer.body.get("status") != "RUNNING":
            raise RuntimeError(f"create {token}: {answer.status} {answer.body}")
        answered = time.perf_counter() - began
        result = await bai.call("POST", f"/kernel/{token}", body={"mode": "query", "code": "print(1)"})
        if result.status != 200 or result.body["result"]["console"] != [["stdout", "1\n"]]:
            raise RuntimeError(f"execute in {token}: {result.status} {result.body}")
        first_result = time.perf_counter() - began
        await bai.call("DELETE", f"/kernel/{token}")
        if i >= 0:
            plain_s.append(ready)
            session_s.append(answered)
            first_result_s.append(first_result)
    pods.stop()
    await until(lambda: _count_pods(core, "bench=real"), 0, "real-node plain Pods deleted")
    await delete_sessions(custom)
    warm_answered, warm, customised = await warm_first_results(custom, bai, settings)
    return {
        "baseline": Latency.of(plain_s),
        "kubernel": Latency.of(session_s),
        "first_result": Latency.of(first_result_s),
        "warm_response": Latency.of(warm_answered),
        "warm_first_result": Latency.of(warm),
        "warm_customised_first_result": Latency.of(customised),
    }


async def first_result(bai: ApiClient, token: str, config: dict) -> tuple[float, float]:
    """Seconds from POST /kernel/create to its RUNNING answer, and to the result of a first
    print(1), the client's calls."""
    began = time.perf_counter()
    answer = await bai.call(
        "POST", "/kernel/create", body={"clientSessionToken": token, "image": "real/warm", "config": config}
    )
    if answer.status != 201 or answer.body.get("status") != "RUNNING":
        raise RuntimeError(f"create {token}: {answer.status} {answer.body}")
    answered = time.perf_counter() - began
    result = await bai.call("POST", f"/kernel/{token}", body={"mode": "query", "code": "print(1)"})
    if result.status != 200 or result.body["result"]["console"] != [["stdout", "1\n"]]:
        raise RuntimeError(f"execute in {token}: {result.status} {result.body}")
    return answered, time.perf_counter() - began


async def warm_first_results(
    custom: client.CustomObjectsApi, bai: ApiClient, settings: BenchSettings
) -> tuple[list[float], list[float], list[float]]:
    """Create -> RUNNING and -> first result with a warm pool (docs/pools.md), one at a time, each once the
    pool is full again: a plain claim (the pool's size), then a customised one (an environ
    and twice the CPU: a bind and an in-place resize). Each claim must be a pool hit."""
    pool = {
        "apiVersion": r.API_VERSION,
        "kind": r.POOL_KIND,
        "metadata": {"name": "bench-warm"},
        "spec": {"image": "real/warm", "replicas": WARM_REPLICAS, "resources": WARM_POOL},
    }
    await custom.create_namespaced_custom_object(r.GROUP, r.VERSION, NAMESPACE, r.POOL_PLURAL, pool)

    async def full() -> bool:
        body = await custom.get_namespaced_custom_object(
            r.GROUP, r.VERSION, NAMESPACE, r.POOL_PLURAL, "bench-warm"
        )
        status = body.get("status") or {}
        return status.get("ready") == WARM_REPLICAS and status.get("starting") == 0

    plain = {"resources": {"cpu": 0.5, "mem": "256m"}}
    customised = {"resources": {"cpu": 1, "mem": "256m"}, "environ": {"BENCH": "1"}}
    say(f"real node: {settings.real_sequential} warm claims, then as many customised (environ + resize)")
    figures: tuple[list[float], list[float]] = ([], [])
    answers: list[float] = []
    for kind, create_config in enumerate((plain, customised)):
        for i in range(settings.real_sequential):
            await wait_until(full, timeout=120, interval=0.2, what="the warm pool full")
            token = f"warm-{kind}-{i:03}"
            answered, result = await first_result(bai, token, create_config)
            figures[kind].append(result)
            if kind == 0:
                answers.append(answered)
            name = r.session_name(bai.keypair.access_key, token)
            body = await custom.get_namespaced_custom_object(r.GROUP, r.VERSION, NAMESPACE, r.PLURAL, name)
            if not (body.get("status") or {}).get("pool"):
                raise RuntimeError(
                    f"{token} started cold: {(body.get('status') or {}).get('coldStartReason')}"
                )
            await bai.call("DELETE", f"/kernel/{token}")
    await custom.delete_namespaced_custom_object(r.GROUP, r.VERSION, NAMESPACE, r.POOL_PLURAL, "bench-warm")
    await delete_sessions(custom)
    return answers, *figures


# -- the Kubernel side ---------------------------------------------------------------
async def open_stream(bai: ApiClient, keys: Keys, on_message=None) -> StreamReader:
    host, port = bai.host.split(":")
    _, reader = await asyncio.get_running_loop().create_connection(
        # HTTP/1.0: the stream comes without chunked encoding to undo.
        lambda: StreamReader(bai.raw_head("GET", "/stream/kernel/_/events", http="1.0"), keys, on_message),
        host,
        int(port),
    )
    await asyncio.wait_for(reader.opened, 30)
    return reader


class StartedOnStream:
    """One SSE stream: when each session's kernel_started arrived."""

    def __init__(self) -> None:
        self.started: dict[bytes, float] = {}
        self.waiters: dict[bytes, asyncio.Future[float]] = {}
        self.reader: StreamReader | None = None
        self.keys = Keys()

    async def open(self, bai: ApiClient) -> None:
        self.reader = await open_stream(bai, self.keys, self._on_message)

    def _on_message(self, session: bytes, event: bytes, at: float) -> None:
        if event == b"kernel_started":
            moment = time.perf_counter()
            self.started[session] = moment
            waiter = self.waiters.pop(session, None)
            if waiter and not waiter.done():
                waiter.set_result(moment)

    def wait(self, token: str) -> asyncio.Future[float]:
        future = asyncio.get_running_loop().create_future()
        key = token.encode()
        if key in self.started:
            future.set_result(self.started[key])
        else:
            self.waiters[key] = future
        return future


async def create_session(bai: ApiClient, token: str) -> float:
    """POST /kernel/create, waiting for the start; the moment of the response."""
    answer = await bai.call(
        "POST", "/kernel/create", body={"clientSessionToken": token, "image": "python:3.6"}
    )
    if answer.status != 201 or answer.body.get("status") != "RUNNING":
        raise RuntimeError(f"create {token}: {answer.status} {answer.body}")
    return time.perf_counter()


async def creations(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, bai: ApiClient, settings: BenchSettings
) -> dict:
    """Plain Pods and sessions, one at a time and in bursts, under the same conditions."""
    pods, stream = PodsReady(core), StartedOnStream()
    await pods.start()
    await stream.open(bai)

    async def plain(name: str) -> float:
        began = time.perf_counter()
        await core.create_namespaced_pod(NAMESPACE, plain_pod(name))
        return await asyncio.wait_for(pods.wait(name), 60) - began

    async def session(token: str) -> tuple[float, float]:
        began, sse = time.perf_counter(), stream.wait(token)
        answered = await create_session(bai, token)
        return answered - began, await asyncio.wait_for(sse, 60) - began

    say(f"requests per creation: {settings.counted} plain Pods, then {settings.counted} sessions")
    before = await api_requests(custom.api_client)
    for i in range(settings.counted):
        await plain(f"plain-count-{i}")
    middle = await api_requests(custom.api_client)
    for i in range(settings.counted):
        await session(f"count-{i:03}")
    after = await api_requests(custom.api_client)

    say(f"one at a time: {settings.sequential} plain Pods and {settings.sequential} sessions, alternating")
    plain_s, response_s, event_s = [], [], []
    for i in range(settings.sequential):
        plain_s.append(await plain(f"plain-seq-{i}"))
        answered, seen = await session(f"seq-{i:03}")
        response_s.append(answered)
        event_s.append(seen)

    base_burst = await plain_burst(core, pods, settings)
    pods.stop()
    await delete_plain_pods(core)
    say(f"kubernel: {settings.burst} sessions at once")
    tokens = [f"burst-{i:03}" for i in range(settings.burst)]
    sse = [stream.wait(t) for t in tokens]
    began = time.perf_counter()
    answered = await asyncio.gather(*(create_session(bai, t) for t in tokens))
    seen = await asyncio.wait_for(asyncio.gather(*sse), 300)
    stream.reader.close()
    await delete_sessions(custom)
    return {
        "baseline": {
            "one_at_a_time": Latency.of(plain_s),
            "burst": base_burst,
            "requests_per_item": per_item(before, middle, settings.counted),
        },
        "kubernel": {
            "response": Latency.of(response_s),
            "started_event": Latency.of(event_s),
            "burst_response": Burst(settings.burst, max(answered) - began),
            "burst_started_event": Burst(settings.burst, max(seen) - began),
            "requests_per_item": per_item(middle, after, settings.counted),
        },
    }


ENTRY_LAG = "kubernel_api_lifecycle_entry_lag_seconds"


async def entry_lag(bai: ApiClient, metrics_url: str) -> dict[float, float]:
    """The API's histogram of how late lifecycle entries reach it (its /metrics)."""
    async with bai.http.get(metrics_url) as response:
        return histogram_buckets(await response.text(), ENTRY_LAG)


async def fanout(
    bai: ApiClient,
    custom: client.CustomObjectsApi,
    api: ServiceProcess,
    settings: BenchSettings,
    metrics_url: str,
    work: Path,
    subscribers: int,
    prefix: str,
) -> dict:
    say(f"fan-out: opening {subscribers} SSE streams")
    binary = build_sseload(work)
    signed_at = datetime.now(UTC)
    heads = [
        bai.raw_head("GET", "/stream/kernel/_/events", http="1.0", date=signed_at + timedelta(microseconds=i))
        for i in range(subscribers)
    ]
    load = await LoadClient.open(binary, bai.host, heads, work)
    try:
        pid = api.proc.pid
        rss_connected, cpu_before = rss_mb(pid), cpu_seconds(pid)
        sampler = Sampler(pid)
        lag_before = await entry_lag(bai, metrics_url)
        say(f"fan-out: {settings.fanout_sessions} sessions start while {subscribers} streams listen")
        tokens = [f"{prefix}{i:03}" for i in range(settings.fanout_sessions)]
        calls = []
        for token in tokens:
            body = {"clientSessionToken": token, "image": "python:3.6", "enqueueOnly": True}
            calls.append(asyncio.create_task(bai.call("POST", "/kernel/create", body=body)))
            await asyncio.sleep(1 / settings.fanout_rate)  # the creation rate, not synchronisation
        answers = await asyncio.gather(*calls)
        if failed := [a.body for a in answers if a.status != 201]:
            raise RuntimeError(f"fan-out creations failed: {failed[:3]}")
        complete = await load.wait([f"{t} kernel_started" for t in tokens], timeout=300)
        if not complete["ok"]:
            raise RuntimeError(f"not every subscriber saw every kernel_started in {complete['seconds']:.0f}s")
        peak, cpu = sampler.stop(), cpu_seconds(pid) - cpu_before
        lag_after = await entry_lag(bai, metrics_url)
        listed = await custom.list_namespaced_custom_object(r.GROUP, r.VERSION, NAMESPACE, r.PLURAL)
        recorded = {
            f"{b['spec']['sessionId']} {e['event']}": datetime.fromisoformat(e["time"]).timestamp()
            for b in listed["items"]
            if b["spec"]["sessionId"].startswith(prefix)
            for e in b["status"]["lifecycle"]
        }
        delays = await load.delays(recorded)
    finally:
        await load.close()
    upstream = {
        f"p{round(q * 100)}": 1000 * histogram_quantile(lag_before, lag_after, q) for q in (0.5, 0.99)
    }
    return {
        "delivery": Latency(delays["messages"], delays["p50_ms"], delays["p95_ms"], delays["p99_ms"]),
        "delivery_max_ms": delays["max_ms"],
        "spread": Latency(
            delays["messages"], delays["spread_p50_ms"], delays["spread_p95_ms"], delays["spread_p99_ms"]
        ),
        "upstream_ms": upstream,
        "messages": delays["messages"],
        "streams_ended_early": delays["ended"],
        "api_rss_connected_mb": rss_connected,
        "api_rss_peak_mb": peak,
        "api_cpu_s": cpu,
        "subscribers": subscribers,
    }


class Prober:
    """GET /kernel/:id of a live session, one after another at a steady pace, while the
    waves run: what a client reading its session sees meanwhile."""

    def __init__(self, bai: ApiClient, pace_s: float = 0.05) -> None:
        self.bai, self.pace_s = bai, pace_s
        self.tokens: list[str] = []
        self.seconds: list[float] = []
        self.failures: list[str] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            if self.tokens:
                token = random.choice(self.tokens)
                began = time.perf_counter()
                answer = await self.bai.call("GET", f"/kernel/{token}")
                self.seconds.append(time.perf_counter() - began)
                if answer.status != 200:
                    self.failures.append(f"GET {token}: {answer.status}")
            await asyncio.sleep(self.pace_s)  # the probe's pace, not synchronisation

    def stop(self) -> None:
        self.task.cancel()


async def idle_cpu(pids: dict[str, int], window_s: float, settle_limit_s: float) -> dict:
    """CPU use once the processes have settled: 5 s windows until two in a row differ by
    under 2 points of a core (or ``settle_limit_s``), then one window of ``window_s``."""
    began, previous = time.perf_counter(), None
    while time.perf_counter() - began < settle_limit_s:
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        await asyncio.sleep(5)  # a measurement window
        pct = {name: 20 * (cpu_seconds(pid) - before[name]) for name, pid in pids.items()}
        if previous and all(abs(pct[n] - previous[n]) < 2 for n in pids):
            break
        previous = pct
    settled = time.perf_counter() - began
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    await asyncio.sleep(window_s)  # a measurement window
    return {
        "settle_s": settled,
        "window_s": window_s,
        **{
            f"{name}_idle_cpu_pct": 100 * (cpu_seconds(pid) - before[name]) / window_s
            for name, pid in pids.items()
        },
    }


async def scale(
    bai: ApiClient,
    custom: client.CustomObjectsApi,
    operator: ServiceProcess,
    api: ServiceProcess,
    settings: BenchSettings,
    already: list[str],
) -> dict:
    """Sessions created in waves until ``live_sessions`` are running, with a GET prober
    and an SSE stream watching; then memory and settled idle CPU."""
    stream, prober = StartedOnStream(), Prober(bai)
    await stream.open(bai)
    prober.tokens += already
    gate = asyncio.Semaphore(100)
    failures: list[str] = []

    async def create(token: str) -> bool:
        async with gate:
            answer = await bai.call(
                "POST",
                "/kernel/create",
                body={"clientSessionToken": token, "image": "python:3.6", "enqueueOnly": True},
            )
        if answer.status != 201:
            failures.append(f"create {token}: {answer.status} {answer.body}")
        return answer.status == 201

    waves, live, began_all = [], len(already), time.perf_counter()
    while live < settings.live_sessions:
        tokens = [f"live-{i:05}" for i in range(live, min(live + settings.wave, settings.live_sessions))]
        waiters = {t: stream.wait(t) for t in tokens}
        began = time.perf_counter()
        created = await asyncio.gather(*(create(t) for t in tokens))
        started = [t for t, ok in zip(tokens, created, strict=True) if ok]
        await asyncio.wait_for(asyncio.gather(*(waiters[t] for t in started)), 900)
        live += len(tokens)
        prober.tokens += started
        wave = {
            "live": live,
            "seconds": time.perf_counter() - began,
            "operator_rss_mb": rss_mb(operator.proc.pid),
            "api_rss_mb": rss_mb(api.proc.pid),
        }
        waves.append(wave)
        say(
            f"scale: {live}/{settings.live_sessions} sessions live ({wave['seconds']:.0f}s for this wave;"
            f" operator {wave['operator_rss_mb']:.0f} MB, API {wave['api_rss_mb']:.0f} MB)"
        )
    prober.stop()
    created_s = time.perf_counter() - began_all
    say(f"scale: all {live} running after {created_s:.0f}s; waiting for the processes to settle")
    idle = await idle_cpu({"operator": operator.proc.pid, "api": api.proc.pid}, 30, 120)
    stream.reader.close()
    listed = await custom.list_namespaced_custom_object(r.GROUP, r.VERSION, NAMESPACE, r.PLURAL)
    recorded = {
        (b["spec"]["sessionId"].encode(), e["event"].encode()): datetime.fromisoformat(e["time"]).timestamp()
        for b in listed["items"]
        if b["spec"]["sessionId"].startswith("live-")
        for e in b["status"]["lifecycle"]
    }
    keys, reader = stream.keys, stream.reader
    delays = [
        at - recorded[keys.names[k]]
        for at, k in zip(reader.times, reader.key_ids, strict=True)
        if keys.names[k] in recorded
    ]
    return {
        "sessions": live,
        "waves": waves,
        "created_s": created_s,
        "operator_rss_mb": rss_mb(operator.proc.pid),
        "api_rss_mb": rss_mb(api.proc.pid),
        **idle,
        "get_latency": Latency.of(prober.seconds),
        "sse_delivery": Latency.of(delays),
        "failed_requests": len(failures) + len(prober.failures),
        "failures": (failures + prober.failures)[:20],
    }


# -- the run -----------------------------------------------------------------------
PHASES = ("creations", "real", "fanout", "scale")


async def run(
    settings: BenchSettings,
    phases: tuple[str, ...],
    profile: bool,
    kubeconfig: str,
    work: Path,
    results: dict,
) -> None:
    """Fills ``results`` phase by phase (a failed phase keeps what the others measured)."""
    cfg = client.Configuration()
    await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    cfg.connection_pool_maxsize = 300
    async with client.ApiClient(cfg) as kube:
        core, custom = client.CoreV1Api(kube), client.CustomObjectsApi(kube)
        await core.create_namespace({"metadata": {"name": NAMESPACE}})
        admin = kp.Keypair(access_key="AKIABENCHADMIN", secret_key=uuid.uuid4().hex, role=kp.Role.SUPERADMIN)
        await core.create_namespaced_secret(NAMESPACE, kp.to_secret(admin))
        operator, api, base_url, metrics_url = services(kubeconfig, work)
        say("starting the operator and the API")
        operator.start()
        api.start()
        profiles = work.parent / "profiles"
        try:
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=300)
            ) as http:
                bai = ApiClient(base_url, admin, http)
                if "creations" in phases:
                    results["creations"] = await creations(core, custom, bai, settings)
                if "real" in phases:
                    results["real_node"] = await real_node(core, custom, bai, settings)
                live: list[str] = []
                if "fanout" in phases:
                    results["fanout"] = []
                    for round_, subscribers in enumerate(settings.subscribers):
                        prefix = f"fan{round_}-"
                        async with profiled(
                            profile, {"api": api.proc.pid}, f"fanout-{subscribers}", profiles
                        ):
                            results["fanout"].append(
                                await fanout(
                                    bai, custom, api, settings, metrics_url, work, subscribers, prefix
                                )
                            )
                        live += [f"{prefix}{i:03}" for i in range(settings.fanout_sessions)]
                if "scale" in phases:
                    pids = {"operator": operator.proc.pid, "api": api.proc.pid}
                    async with profiled(profile, pids, "scale", profiles):
                        results["scale"] = await scale(bai, custom, operator, api, settings, live)
        finally:
            api.stop()
            operator.stop()


def creation_rows(results: dict, settings: BenchSettings) -> list[str]:
    rows = []
    if "creations" in results:
        base, ours = results["creations"]["baseline"], results["creations"]["kubernel"]
        b1: Latency = base["one_at_a_time"]
        rows.append(
            (
                "plain Pods: create -> Ready",
                f"{b1.p50:.1f}",
                f"{b1.p95:.1f}",
                f"{b1.p99:.1f}",
                "1.00",
                f"{base['burst'].wall_s:.2f}",
                f"{base['burst'].per_s:.1f}",
                "1.00",
            )
        )
        for label, latency, burst in (
            ("kubernel: POST /kernel/create -> response", ours["response"], ours["burst_response"]),
            ("kubernel: POST -> kernel_started on SSE", ours["started_event"], ours["burst_started_event"]),
        ):
            rows.append(
                (
                    label,
                    f"{latency.p50:.1f}",
                    f"{latency.p95:.1f}",
                    f"{latency.p99:.1f}",
                    f"{ratio(latency.p50, b1.p50):.2f}",
                    f"{burst.wall_s:.2f}",
                    f"{burst.per_s:.1f}",
                    f"{ratio(burst.per_s, base['burst'].per_s):.2f}",
                )
            )
    if "real_node" in results:
        real = results["real_node"]
        for label, latency in (
            ("real node: plain Pod create -> Ready", real["baseline"]),
            ("real node: POST /kernel/create -> RUNNING", real["kubernel"]),
            ("real node: POST /kernel/create -> print(1) result", real["first_result"]),
            ("real node, warm pool: create -> RUNNING", real["warm_response"]),
            ("real node, warm pool: create -> print(1) result", real["warm_first_result"]),
            ("  customised (environ + resize in place)", real["warm_customised_first_result"]),
        ):
            rows.append(
                (
                    label,
                    f"{latency.p50:.1f}",
                    f"{latency.p95:.1f}",
                    f"{latency.p99:.1f}",
                    f"{ratio(latency.p50, real['baseline'].p50):.2f}",
                    "",
                    "",
                    "",
                )
            )
    if not rows:
        return []
    header = (
        "",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "p50 x base",
        f"{settings.burst} at once s",
        "per s",
        "x base",
    )
    sections = [table(rows, header)]
    if "creations" in results:
        calls = "\n".join(
            f"{label:<11}{sum(counts.values()):6.1f}  "
            + ", ".join(f"{k} {v:g}" for k, v in list(counts.items())[:8])
            for label, counts in (
                ("plain Pod", results["creations"]["baseline"]["requests_per_item"]),
                ("kubernel", results["creations"]["kubernel"]["requests_per_item"]),
            )
        )
        sections.append(
            "kube-apiserver requests per creation, one at a time (all clients: ours, scheduler, KWOK, ...)\n"
            + calls
        )
    return sections


def report(results: dict, settings: BenchSettings) -> tuple[str, list[Target]]:
    sections = creation_rows(results, settings)
    rows: list[tuple[str, ...]] = []
    targets: list[Target] = []
    if "creations" in results:
        base, ours = results["creations"]["baseline"], results["creations"]["kubernel"]
        targets += [
            Target(
                "create-to-started p50 vs plain Pods",
                ratio(ours["started_event"].p50, base["one_at_a_time"].p50),
                1.5,
                "x",
            ),
            Target(
                f"throughput of {settings.burst} at once vs plain Pods",
                ratio(ours["burst_started_event"].per_s, base["burst"].per_s),
                0.6,
                "x",
                higher_is_better=True,
            ),
        ]
    if "real_node" in results:
        real = results["real_node"]
        warm: Latency = real["warm_first_result"]
        targets += [
            Target("warm pool: create -> first result p50", warm.p50, 100, " ms"),
            Target("warm pool: create -> first result p99", warm.p99, 300, " ms"),
            Target(
                "warm pool: customised claim p50 vs a plain claim",
                ratio(real["warm_customised_first_result"].p50, warm.p50),
                1.5,
                "x",
            ),
        ]
    for fan in results.get("fanout", []):
        delivery: Latency = fan["delivery"]
        rows += [
            (
                f"SSE delivery, {fan['subscribers']} subscribers, {settings.fanout_rate:g} sessions/s",
                f"p50 {delivery.p50:.1f} ms",
                f"p99 {delivery.p99:.1f} ms",
                f"{fan['messages']} messages",
            ),
            (
                "  after the first subscriber had it (fan-out)",
                f"p50 {fan['spread'].p50:.1f} ms",
                f"p99 {fan['spread'].p99:.1f} ms",
                "(server's fan-out)",
            ),
            (
                "  of which until the API had the entry",
                f"p50 {fan['upstream_ms']['p50']:.1f} ms",
                f"p99 {fan['upstream_ms']['p99']:.1f} ms",
                "(API histogram)",
            ),
            (
                "  API process",
                f"RSS {fan['api_rss_peak_mb']:.0f} MB peak",
                f"{fan['api_rss_connected_mb']:.0f} MB connected",
                f"CPU {fan['api_cpu_s']:.1f} s",
            ),
        ]
        targets += [
            Target(f"SSE p99 with {fan['subscribers']} subscribers", delivery.p99, 250, " ms"),
            Target(f"API RSS with {fan['subscribers']} open streams", fan["api_rss_peak_mb"], 500, " MB"),
            Target(
                f"SSE streams cut off, {fan['subscribers']} subscribers", fan["streams_ended_early"], 0, ""
            ),
        ]
    if "scale" in results:
        sc = results["scale"]
        rows += [
            (
                f"scale, {sc['sessions']} live sessions (waves of {settings.wave})",
                f"operator RSS {sc['operator_rss_mb']:.0f} MB",
                f"API RSS {sc['api_rss_mb']:.0f} MB",
                f"created and started in {sc['created_s']:.0f} s",
            ),
            (
                f"  idle CPU over {sc['window_s']:.0f} s, settled after {sc['settle_s']:.0f} s",
                f"operator {sc['operator_idle_cpu_pct']:.1f}%",
                f"API {sc['api_idle_cpu_pct']:.1f}%",
                "of one core",
            ),
            (
                "  during the waves: GET /kernel/:id",
                f"p50 {sc['get_latency'].p50:.1f} ms",
                f"p99 {sc['get_latency'].p99:.1f} ms",
                f"{sc['get_latency'].n} requests",
            ),
            (
                "  during the waves: SSE delivery",
                f"p50 {sc['sse_delivery'].p50:.1f} ms",
                f"p99 {sc['sse_delivery'].p99:.1f} ms",
                f"{sc['sse_delivery'].n} messages",
            ),
        ]
        targets += [
            Target(f"operator RSS with {sc['sessions']} live sessions", sc["operator_rss_mb"], 500, " MB"),
            Target(
                f"operator idle CPU with {sc['sessions']} live sessions", sc["operator_idle_cpu_pct"], 5, "%"
            ),
            Target("failed requests during the waves", sc["failed_requests"], 0, ""),
        ]
    if rows:
        sections.append(table(rows, ("", "", "", "")))
    sections.append("\n".join(t.line() for t in targets))
    return "\n\n".join(sections), targets


def jsonable(value):
    if isinstance(value, (Latency, Burst)):
        return {**asdict(value), **({"per_s": value.per_s} if isinstance(value, Burst) else {})}
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / ".local" / "bench")
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"a comma-separated subset of {','.join(PHASES)} (default: all)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record the services with py-spy during the fan-out and scale phases (.local/bench/profiles)",
    )
    args = parser.parse_args()
    args.out = args.out.resolve()  # the load client is built elsewhere (go build in bench/sseload)
    phases = tuple(p for p in args.phases.split(",") if p)
    if unknown := set(phases) - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    settings = BenchSettings.quick() if args.quick else BenchSettings()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # 10,000 streams
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    defaults = TestbedSettings.from_env()
    testbed = Testbed(
        TestbedSettings(
            state_dir=REPO / ".local" / "bench-testbed",
            cache_dir=defaults.cache_dir,
            delays=SimulatedDelays(accept=0, pull=0, create=0, start=0, stop=0),
            nodes=NodeShape(count=4, cpu="4000", memory="16Ti", pods="3000"),
        )
    )
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "run"
    work.mkdir(exist_ok=True)
    began = time.monotonic()
    say("bench: starting a test bed of its own (simulated delays 0 ms)")
    testbed.up()
    results: dict = {}
    failure = None
    try:
        testbed.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        testbed.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(REPO / "crds"))
        asyncio.run(run(settings, phases, args.profile, str(testbed.layout.kubeconfig), work, results))
    except Exception as exc:  # noqa: BLE001 - the phases that finished are still written
        failure = f"{type(exc).__name__}: {exc}"
        say(f"bench: a phase failed ({failure}); writing what the others measured")
    finally:
        say("bench: stopping its test bed")
        testbed.down()
    text, targets = report(results, settings)
    document = {
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "settings": asdict(settings),
        "phases": list(phases),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "duration_s": round(time.monotonic() - began, 1),
        "results": jsonable(results),
        "targets": [{**asdict(t), "met": t.met} for t in targets],
        "failure": failure,
    }
    (args.out / "results.json").write_text(json.dumps(document, indent=2))
    print(f"\n{text}\n\nfigures: {args.out / 'results.json'} ({document['duration_s']:.0f}s)", flush=True)
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
