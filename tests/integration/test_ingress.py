"""Traefik on the real node (kubernel_testbed.ingress) routes an Ingress of class
``traefik`` from the host's entry URL to a Pod: a plain page, with the Host header
passed through, and an event stream whose events arrive when they are sent, not
batched, with the client's Last-Event-ID reaching the backend.

The backend is a tiny Python HTTP server in the test bed's Python image; it stamps
every event with the time it wrote it, and the real node shares this machine's
clock, so arrival minus sending time is what the proxy added.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import aiohttp
import pytest

from kubernel_testbed import ingress, launcher, node, settings
from kubernel_testkit.waiting import wait_until

# A plain backend Pod, not a kernel: the namespace enforces no Pod Security Standard.
pytestmark = pytest.mark.pod_security("privileged")

HOST = "sse.ingress.test"
"""The Ingress rule's host (the test's is ``<namespace>.ingress.test``: two runs, or a
leftover Ingress, must not share a route): Traefik routes on it, the backend echoes it."""
BACKEND_PORT = 8080
BACKEND = r"""
import http.server, json, time, urllib.parse

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/events":
            return self.events(dict(urllib.parse.parse_qsl(url.query)))
        body = json.dumps({"page": "plain", "host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send(self, text):
        self.wfile.write(text.encode())
        self.wfile.flush()

    def events(self, query):
        # count events `every` seconds, then `idle` seconds of heartbeat comments only, then "end".
        count, every = int(query.get("count", 3)), float(query.get("every", 1))
        idle, heartbeat = float(query.get("idle", 0)), float(query.get("heartbeat", 15))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")  # no length: the stream ends when the server closes
        self.end_headers()
        last = self.headers.get("Last-Event-ID")
        for n in range(count):
            if n:
                time.sleep(every)  # the stream's own pace, the thing under test
            self.send("id: %d\ndata: %s\n\n" % (n, json.dumps({"n": n, "sent": time.time(), "last_event_id": last})))
        quiet_until = time.time() + idle
        while time.time() + heartbeat <= quiet_until:
            time.sleep(heartbeat)
            self.send(": heartbeat %.3f\n\n" % time.time())
        if idle:
            self.send("event: end\ndata: %s\n\n" % json.dumps({"sent": time.time(), "idle": idle}))
        self.close_connection = True

http.server.ThreadingHTTPServer(("", 8080), Handler).serve_forever()
"""


def backend_manifests(namespace: str, host: str = HOST) -> list[dict[str, object]]:
    """A Pod serving ``BACKEND``, its Service and an Ingress of class traefik for ``host``."""
    labels = {"app": "ingress-backend"}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "backend", "namespace": namespace, "labels": labels},
        "spec": {
            "nodeSelector": {node.REAL_NODE_LABEL: "true"},
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "backend",
                    "image": node.PYTHON_IMAGE,
                    "command": ["/usr/bin/python3", "-c", BACKEND],
                    "ports": [{"name": "http", "containerPort": BACKEND_PORT}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                    "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
                    "securityContext": {
                        "runAsUser": 1000,
                        "runAsNonRoot": True,
                        "allowPrivilegeEscalation": False,
                    },
                }
            ],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "backend", "namespace": namespace},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    route = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "backend", "namespace": namespace},
        "spec": {
            "ingressClassName": ingress.INGRESS_CLASS,
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "backend", "port": {"name": "http"}}},
                            }
                        ]
                    },
                }
            ],
        },
    }
    return [pod, service, route]


@pytest.fixture(scope="module")
def traefik(kubeconfig: str) -> Iterator[str]:
    """The entry URL of Traefik on the real node: installed for this module unless it
    already runs (``make deploy`` installed it), then removed again unless someone
    else's Ingress has come to use it meanwhile (the test bed is shared)."""
    bed = launcher.Testbed(settings.TestbedSettings.from_env())
    if not bed.settings.real_node or str(bed.layout.kubeconfig) != kubeconfig:
        pytest.skip("needs the local test bed's real node (KUBERNEL_REAL_NODE=1, no external KUBECONFIG)")
    was_installed = ingress.installed(kubeconfig)
    url = ingress.install(kubeconfig)  # the first time, it compiles Traefik: minutes
    yield url
    if not was_installed and not ingress.in_use(kubeconfig):
        ingress.uninstall(kubeconfig)


def apply(kubeconfig: str, items: list[dict[str, object]]) -> None:
    cluster = ingress.Cluster.from_env(kubeconfig)
    cluster.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )


async def plain_page(http: aiohttp.ClientSession, url: str, host: str) -> dict | None:
    """The backend's page through Traefik, once it routes there: until then a 404, or
    another Ingress's answer (``make deploy``'s API has a rule for any host)."""
    try:
        async with http.get(url + "/", headers={"Host": host}) as response:
            page = await response.json() if response.status == 200 else {}
            return page if page.get("page") == "plain" else None
    except (aiohttp.ClientError, ValueError):
        return None


async def read_events(response: aiohttp.ClientResponse) -> list[tuple[dict, float]]:
    """Each event's data with the time its last line arrived."""
    got, data = [], None
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("data: "):
            data = json.loads(line[6:])
        elif not line and data is not None:
            got.append((data, time.time()))
            data = None
    return got


@pytest.mark.timeout(1800)  # the first install compiles Traefik (~10 min on 2 cores); cached after
async def test_plain_page_and_an_unbuffered_event_stream_through_traefik(
    traefik: str, kubeconfig: str, namespace: str
) -> None:
    host = f"{namespace}.ingress.test"
    apply(kubeconfig, backend_manifests(namespace, host))
    timeout = aiohttp.ClientTimeout(total=30, sock_read=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        page = await wait_until(
            lambda: plain_page(http, traefik, host), timeout=60, what=f"{host} routed by Traefik"
        )
        assert page == {"page": "plain", "host": host}  # the Host header unchanged: signatures cover it

        every = 1.5  # apart enough that a held-back event shows, even on a busy machine
        async with http.get(
            f"{traefik}/events?count=4&every={every}", headers={"Host": host, "Last-Event-ID": "41"}
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/event-stream"
            events = await read_events(response)

    assert [data["n"] for data, _ in events] == [0, 1, 2, 3]
    assert {data["last_event_id"] for data, _ in events} == {"41"}
    delays = [arrived - data["sent"] for data, arrived in events]
    assert max(delays) < every / 2, f"events held back by the proxy: delays {delays}"
    # Spread out as sent (4.5 s from first to last), not delivered together at the end.
    assert events[-1][1] - events[0][1] > 3 * every - every / 2, [arrived for _, arrived in events]
