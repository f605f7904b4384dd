"""Start the real node of the test bed: registry, images, containerd, CoreDNS,
kube-proxy, the kubelet and kube-router (NetworkPolicies), each a background process
of the test bed."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import yaml

from . import imagebuild, node, nodehost
from .components import Layout
from .polling import free_port, wait_for

COMPONENTS = ["registry", "containerd", "coredns", "kube-proxy", "kubelet", "kube-router"]
OWNER_FILE = Path("/run/kubernel-testbed-real-node")
"""Which test bed holds the real node: its interfaces and addresses are machine-wide."""


class Host(Protocol):
    """What the real node needs of the test bed's launcher."""

    layout: Layout

    def start_process(self, name: str, argv: list[str]) -> None: ...
    def check_alive(self, name: str) -> bool: ...
    def stop_process(self, name: str) -> None: ...
    def kubectl(self, *args: str, input: str | None = None) -> str: ...


def node_layout(layout: Layout) -> node.NodeLayout:
    return node.NodeLayout(root=layout.state / "node")


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status == 200


def claim(state: Path) -> None:
    """Refuse to start a second real node on this machine."""
    try:
        owner = Path(OWNER_FILE.read_text().strip())
    except FileNotFoundError:
        owner = None
    if owner is not None and owner != state and (owner / "run" / "kubelet.pid").exists():
        raise RuntimeError(
            f"the real node belongs to the test bed in {owner}; stop it first "
            f"(KUBERNEL_TESTBED_DIR={owner} python -m kubernel_testbed down), "
            "or set KUBERNEL_REAL_NODE=0 for a test bed without it"
        )
    OWNER_FILE.write_text(str(state))


def release(state: Path) -> None:
    try:
        if Path(OWNER_FILE.read_text().strip()) == state:
            OWNER_FILE.unlink()
    except FileNotFoundError:
        pass


def prepare(host: Host, cache_dir: Path, say: Callable[[str], None]) -> Path:
    """Before the control plane starts (it binds to the node address): check the machine,
    build or reuse the images, give the node its address. Returns the images' OCI layout."""
    missing = nodehost.missing_prerequisites()
    if missing:
        raise RuntimeError(
            "the real node needs: "
            + "; ".join(missing)
            + ". Run `make node-packages` as root (Debian), or KUBERNEL_REAL_NODE=0"
        )
    claim(host.layout.state)
    oci = imagebuild.ensure_built(cache_dir, say)
    nodehost.prepare(node_layout(host.layout))
    return oci


def start(host: Host, oci: Path, registry_storage: Path, say: Callable[[str], None]) -> node.NodePorts:
    """Registry (images pushed), containerd, CoreDNS, kube-proxy, kubelet, kube-router;
    waits for Ready, and for kube-router's first sync."""

    layout = node_layout(host.layout)
    ports = node.NodePorts(
        registry=free_port(),
        kubelet_healthz=free_port(),
        proxy_healthz=free_port(),
        proxy_metrics=free_port(),
        dns_health=free_port(),
        dns_ready=free_port(),
    )
    (layout.root / "ports.json").write_text(json.dumps(ports.__dict__))
    kubeconfig = host.layout.kubeconfig
    registry_storage.mkdir(parents=True, exist_ok=True)

    say("real node 1/6: the image registry")
    layout.registry_config.write_text(node.registry_config(registry_storage, ports))
    start_registry(host, ports)
    imagebuild.push(oci, node.registry_address(ports), say)

    say("real node 2/6: containerd")
    layout.containerd_config.write_text(node.containerd_config(layout))
    hosts = layout.registry_hosts / node.REGISTRY_HOST
    hosts.mkdir(parents=True, exist_ok=True)
    (hosts / "hosts.toml").write_text(node.registry_hosts_toml(ports))
    layout.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (layout.cni_conf_dir / "10-kubernel.conflist").write_text(node.cni_config(layout))
    host.start_process("containerd", node.containerd(layout))
    ctr = ["ctr", f"--address={layout.containerd_socket}", "--namespace=k8s.io"]
    wait_for(
        "containerd",
        lambda: (
            host.check_alive("containerd")
            and subprocess.run([*ctr, "version"], capture_output=True).returncode == 0
        ),
        timeout=30,
    )
    # The sandbox image is on the node before the first Pod: never pulled on demand.
    subprocess.run(
        [*ctr, "images", "pull", f"--hosts-dir={layout.registry_hosts}", node.PAUSE_IMAGE],
        check=True,
        capture_output=True,
    )

    say("real node 3/6: CoreDNS (cluster DNS on the node address)")
    layout.corefile.write_text(node.corefile(kubeconfig, ports))
    host.start_process("coredns", node.coredns(host.layout.bin, layout))

    say("real node 4/6: kube-proxy")
    layout.kube_proxy_config.write_text(yaml.safe_dump(node.kube_proxy_config(kubeconfig, ports)))
    host.start_process("kube-proxy", node.kube_proxy(host.layout.bin, layout))

    say("real node 5/6: the kubelet")
    layout.kubelet_config.write_text(
        yaml.safe_dump(node.kubelet_config(layout, host.layout.state / "pki", ports))
    )
    host.start_process("kubelet", node.kubelet(host.layout.bin, layout, kubeconfig))
    wait_for(
        "CoreDNS ready",
        lambda: host.check_alive("coredns") and _http_ok(f"http://127.0.0.1:{ports.dns_ready}/ready"),
        timeout=60,
    )
    wait_for(
        "kube-proxy healthy",
        lambda: (
            host.check_alive("kube-proxy") and _http_ok(f"http://127.0.0.1:{ports.proxy_healthz}/healthz")
        ),
        timeout=60,
    )
    wait_for(
        f"node {node.NODE_NAME} Ready",
        lambda: host.check_alive("kubelet") and host.check_alive("containerd") and _node_ready(host),
        timeout=90,
        interval=0.3,
    )
    say("real node 6/6: kube-router (enforces NetworkPolicies on the node's Pods)")
    host.start_process("kube-router", node.kube_router(host.layout.bin, kubeconfig))
    wait_for(
        "kube-router's first sync",
        lambda: host.check_alive("kube-router") and nodehost.has_chain("filter", node.NETPOL_CHAIN),
        timeout=60,
    )
    return ports


def node_ports(layout: Layout) -> node.NodePorts:
    """The ports the running real node uses (FileNotFoundError when it never ran)."""
    return node.NodePorts(**json.loads((node_layout(layout).root / "ports.json").read_text()))


def start_registry(host: Host, ports: node.NodePorts) -> None:
    """(Re)start the registry with its configuration and wait until it answers."""
    host.start_process("registry", node.registry(node_layout(host.layout)))
    wait_for(
        "registry /v2/",
        lambda: host.check_alive("registry") and _http_ok(f"http://{node.registry_address(ports)}/v2/"),
        timeout=30,
    )


def _node_ready(host: Host) -> bool:
    status = json.loads(host.kubectl("get", "node", node.NODE_NAME, "-o", "json"))["status"]
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


def stop(host: Host) -> None:
    nodehost.clean(node_layout(host.layout), host.layout.bin, host.stop_process)
    release(host.layout.state)
