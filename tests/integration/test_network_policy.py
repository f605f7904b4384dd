"""The chart's NetworkPolicies, enforced on the real node by kube-router, tried from inside
real kernels: each rule once allowed (before the policy, or by the rule) and once denied.

The host stands in for the outside world: the test gives the node's link the cloud
metadata address and an "internet" address (TEST-NET-2), each with a listener, and
takes them away again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from kubernel import resource as r
from kubernel_testbed import node
from kubernel_testkit.api_client import ApiClient
from kubernel_testkit.waiting import wait_until

from .conftest import RunningApi
from .test_code import run_to_end, running, text

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "helm" / "kubernel"
METADATA = "169.254.169.254"
INTERNET = "198.51.100.7"  # TEST-NET-2: "somewhere outside", here on the host
OUTSIDE_PORT = 8080

PROBE = r"""
import json, socket
def reach(host, port):
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((host, int(port))); return "open"
    except OSError as exc:
        return type(exc).__name__
    finally:
        s.close()
def resolve(name):
    try:
        return socket.gethostbyname(name)
    except OSError as exc:
        return type(exc).__name__
targets = json.loads(%r)
found = {name: reach(*target.rsplit(":", 1)) for name, target in targets.items()}
found["dns-name"] = resolve("kubernetes.default.svc.cluster.local")
print(json.dumps(found))
"""


@contextlib.asynccontextmanager
async def outside_world() -> AsyncIterator[None]:
    """The metadata and "internet" addresses on the node's link, each answering on a port."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    added: list[str] = []
    servers: list[asyncio.Server] = []
    try:
        for address in (METADATA, INTERNET):
            await asyncio.to_thread(_link_address, "add", address)
            added.append(address)
            servers.append(await asyncio.start_server(answer, address, OUTSIDE_PORT))
        yield
    finally:
        for server in servers:
            server.close()
        for address in added:
            await asyncio.to_thread(_link_address, "del", address)


def _link_address(action: str, address: str) -> None:
    subprocess.run(["ip", "addr", action, f"{address}/32", "dev", node.NODE_LINK], check=action == "add")


def chart_policy(helm_bin: str, namespace: str, *values: str) -> dict[str, Any]:
    """The chart's kernel policy for sessions in ``namespace``. DNS is CoreDNS on the node
    address here (a process on the host, not a Pod in kube-system)."""
    rendered = subprocess.run(
        [
            helm_bin,
            "template",
            "kn",
            str(CHART),
            "-n",
            "kubernel",
            "--show-only",
            "templates/networkpolicy.yaml",
            "--set",
            f"sessions.namespace={namespace}",
            "--set-json",
            f'networkPolicy.dns=[{{"ipBlock": {{"cidr": "{node.NODE_IP}/32"}}}}]',
            *values,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return yaml.safe_load(rendered)


async def probe(api: ApiClient, token: str, targets: dict[str, str]) -> dict[str, str]:
    _, console = await run_to_end(api, token, PROBE % json.dumps(targets))  # may take a timeout or two
    assert text(console, "stderr") == "", console
    return json.loads(text(console, "stdout"))


async def kernel_ips(api: RunningApi, kube: client.ApiClient, namespace: str, token: str) -> list[str]:
    name = r.session_name(api.keypairs["alice"].access_key, token)
    pods = await client.CoreV1Api(kube).list_namespaced_pod(
        namespace, label_selector=f"{r.LABEL_SESSION}={name}"
    )
    ordered = sorted(pods.items, key=lambda p: int(p.metadata.labels[r.LABEL_INDEX]))
    return [p.status.pod_ip for p in ordered]


async def test_kernels_reach_only_what_the_policies_allow(
    api: RunningApi, kube: client.ApiClient, namespace: str, helm_bin: str, kubeconfig: str
) -> None:
    alice = api.client("alice")
    apiserver = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
    apiserver_address = apiserver.split("://", 1)[1]
    async with outside_world():
        await running(alice, "np-alone")
        # The others ask for little: the real node has 2 CPUs in all.
        little = {"resources": {"cpu": "250m", "mem": "256m"}}
        made = await alice.create("np-other", image="real/python", config=little)
        assert made.status == 201 and made.body["status"] == "RUNNING", made.body
        [alone] = await kernel_ips(api, kube, namespace, "np-alone")
        [other] = await kernel_ips(api, kube, namespace, "np-other")
        targets = {
            "other-session-runner": f"{other}:2001",
            "kube-apiserver": apiserver_address,
            "kube-apiserver-service": f"{node.KUBERNETES_SERVICE_IP}:443",
            "kubelet": f"{node.NODE_IP}:10250",
            "metadata": f"{METADATA}:{OUTSIDE_PORT}",
            "internet": f"{INTERNET}:{OUTSIDE_PORT}",
            "dns": f"{node.NODE_IP}:53",
        }
        # No policy yet: everything is reachable (the targets are real and listening).
        before = await probe(alice, "np-alone", targets)
        assert {k: v for k, v in before.items() if k != "dns-name"} == dict.fromkeys(targets, "open")
        assert before["dns-name"] == node.KUBERNETES_SERVICE_IP

        networking = client.NetworkingV1Api(kube)
        await networking.create_namespaced_network_policy(namespace, chart_policy(helm_bin, namespace))

        async def enforced() -> dict[str, str] | None:
            found = await probe(alice, "np-alone", targets)
            return found if found["other-session-runner"] != "open" else None

        denied = await wait_until(enforced, timeout=30, what="kube-router to enforce the policy")
        refused = "ConnectionRefusedError"  # kube-router rejects: no waiting for a timeout
        assert denied == {
            **dict.fromkeys(
                [
                    "other-session-runner",
                    "kube-apiserver",
                    "kube-apiserver-service",
                    "kubelet",
                    "metadata",
                    "internet",
                ],
                refused,
            ),
            "dns": "open",
            "dns-name": node.KUBERNETES_SERVICE_IP,
        }
        # A multi-kernel session started now (the kernels are isolated) gets a policy of its
        # own: its kernels reach each other, and no one else, nor does anyone else reach them.
        pair = await alice.create("np-pair", image="real/python", config={**little, "clusterSize": 2})
        assert pair.status == 201 and pair.body["status"] == "RUNNING", pair.body
        pair_main, pair_sub = await kernel_ips(api, kube, namespace, "np-pair")
        from_pair = await probe(
            alice, "np-pair", {"own-sub-kernel": f"{pair_sub}:2001", "other": f"{alone}:2001"}
        )
        assert (from_pair["own-sub-kernel"], from_pair["other"]) == ("open", refused)
        assert (await probe(alice, "np-alone", {"pair": f"{pair_main}:2001"}))["pair"] == refused
        # The API (here a process on the node) still reaches every runner: the probes ran.

        # Internet egress is a value: the internet opens, nothing else does.
        name = "kn-kubernel-kernels"
        await networking.replace_namespaced_network_policy(
            name, namespace, chart_policy(helm_bin, namespace, "--set", "networkPolicy.internetEgress=true")
        )

        async def internet_open() -> dict[str, str] | None:
            found = await probe(alice, "np-alone", targets)
            return found if found["internet"] == "open" else None

        opened = await wait_until(internet_open, timeout=30, what="kube-router to apply internetEgress")
        assert {k for k, v in opened.items() if v == refused} == {
            "other-session-runner",
            "kube-apiserver",
            "kube-apiserver-service",
            "kubelet",
            "metadata",
        }
