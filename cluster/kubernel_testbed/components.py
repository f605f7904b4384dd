"""Command lines and files of the control-plane components (pure: no I/O).

Everything listens on 127.0.0.1 only. Every component authenticates with the
admin client certificate; the apiserver authorizes with RBAC, so the
ServiceAccounts of later work get real permission checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .node import (
    SERVICE_CIDR,  # allocation range; kube-proxy and kube-router read it
    SIMULATED_TAINT,
)
from .node import SIMULATED_NODE_LABEL as NODE_LABEL

POD_CIDR = "10.244.0.1/16"  # KWOK hands out pod IPs from here; nothing routes to it
NODE_ANNOTATION = "kwok.x-k8s.io/node"


@dataclass(frozen=True)
class Layout:
    """Where the files of one test bed are."""

    state: Path
    bin: Path

    def pki(self, name: str) -> Path:
        return self.state / "pki" / name

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def etcd_data(self) -> Path:
        return self.state / "etcd"

    @property
    def kwok_config(self) -> Path:
        return self.state / "kwok.yaml"

    @property
    def scheduler_config(self) -> Path:
        return self.state / "scheduler.yaml"


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    kwok: int
    apiserver_host: str = "127.0.0.1"
    """The node address when the real node runs (Pods reach the API server there), else loopback."""


def etcd(layout: Layout, ports: Ports) -> list[str]:
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(layout.bin / "etcd"),
        "--name=testbed",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=testbed={peer}",
        "--listen-metrics-urls=",
        # A throw-away test store: durability is not worth an fsync per write.
        "--unsafe-no-fsync",
        "--auto-compaction-retention=1",
        "--log-level=warn",
    ]


def kube_apiserver(layout: Layout, ports: Ports) -> list[str]:
    host = ports.apiserver_host
    return [
        str(layout.bin / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        f"--bind-address={host}",
        f"--advertise-address={host}",
        f"--secure-port={ports.apiserver}",
        # With the real node, the `kubernetes` Service points at the node address, so
        # in-cluster clients work. Without it there is only loopback, which Endpoints
        # validation rejects: publish nothing.
        f"--endpoint-reconciler-type={'none' if host == '127.0.0.1' else 'lease'}",
        # The kubelet's API (logs, exec) with the admin identity; its serving certificate
        # is self-signed, as a kubelet's is by default.
        f"--kubelet-client-certificate={layout.pki('admin.crt')}",
        f"--kubelet-client-key={layout.pki('admin.key')}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--tls-cert-file={layout.pki('serving.crt')}",
        f"--tls-private-key-file={layout.pki('serving.key')}",
        f"--client-ca-file={layout.pki('ca.crt')}",
        f"--service-account-key-file={layout.pki('sa.pub')}",
        f"--service-account-signing-key-file={layout.pki('sa.key')}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        f"--cert-dir={layout.state / 'apiserver'}",
        "--profiling=false",
        "--v=0",
    ]


def kube_controller_manager(layout: Layout) -> list[str]:
    return [
        str(layout.bin / "kube-controller-manager"),
        f"--kubeconfig={layout.kubeconfig}",
        "--leader-elect=false",
        "--secure-port=0",
        f"--root-ca-file={layout.pki('ca.crt')}",
        f"--service-account-private-key-file={layout.pki('sa.key')}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--kube-api-qps=500",
        "--kube-api-burst=1000",
        "--concurrent-gc-syncs=20",
        "--v=0",
    ]


def kube_scheduler(layout: Layout) -> list[str]:
    return [
        str(layout.bin / "kube-scheduler"),
        f"--config={layout.scheduler_config}",
        "--secure-port=0",
        "--v=0",
    ]


def scheduler_config(layout: Layout) -> str:
    return (
        "apiVersion: kubescheduler.config.k8s.io/v1\n"
        "kind: KubeSchedulerConfiguration\n"
        "leaderElection: {leaderElect: false}\n"
        f"clientConnection: {{kubeconfig: '{layout.kubeconfig}', qps: 500, burst: 1000}}\n"
    )


def kwok(layout: Layout, ports: Ports) -> list[str]:
    return [
        str(layout.bin / "kwok"),
        f"--kubeconfig={layout.kubeconfig}",
        f"--config={layout.kwok_config}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
        f"--cidr={POD_CIDR}",
        "--node-ip=127.0.0.1",
        f"--server-address=127.0.0.1:{ports.kwok}",
    ]


def kubeconfig(ca: bytes, cert: bytes, key: bytes, port: int, host: str = "127.0.0.1") -> str:
    import base64

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return f"""apiVersion: v1
kind: Config
clusters:
- name: kubernel-testbed
  cluster:
    server: https://{host}:{port}
    certificate-authority-data: {b64(ca)}
users:
- name: kubernel-testbed-admin
  user:
    client-certificate-data: {b64(cert)}
    client-key-data: {b64(key)}
contexts:
- name: kubernel-testbed
  context: {{cluster: kubernel-testbed, user: kubernel-testbed-admin, namespace: default}}
current-context: kubernel-testbed
"""


def node_manifest(index: int, cpu: str, memory: str, gpus: str, pods: str) -> dict:
    # Kernels ask for ephemeral-storage (their scratch); a simulated node has room for any number.
    resources = {
        "cpu": cpu,
        "memory": memory,
        "ephemeral-storage": "1Pi",
        "nvidia.com/gpu": gpus,
        "pods": pods,
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": f"kwok-node-{index}",
            "annotations": {NODE_ANNOTATION: "fake"},
            "labels": {
                "kubernetes.io/hostname": f"kwok-node-{index}",
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                NODE_LABEL: "true",
            },
        },
        # Only sessions whose image table tolerates it land here (node.SIMULATED_SCHEDULING).
        "spec": {"taints": [dict(SIMULATED_TAINT)]},
        "status": {"allocatable": resources, "capacity": resources},
    }
