"""The real node's configuration: files and command lines (pure: no I/O).

One real node joins the control plane beside the simulated ones: containerd
(Debian's package) with runc and the CNI bridge plugin, the kubelet and
kube-proxy (our multi-call binary), CoreDNS as the cluster DNS and a local OCI
registry (Debian's docker-registry). Everything it makes on the machine has a
name of its own, so ``down`` removes exactly that:

- the node address ``NODE_IP`` on the link ``NODE_LINK`` (a bridge without ports:
  the VM's kernel has no dummy interfaces, and the kubelet refuses loopback);
- the Pod bridge ``CNI_BRIDGE`` with ``POD_SUBNET``, reachable from the host;
- containerd's state, network namespaces and mounts under the state directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

NODE_NAME = "kubernel-node-0"
NODE_LINK = "kubernel-node"
NODE_IP = "10.246.0.1"
CNI_BRIDGE = "kubernel-cni"
CNI_NETWORK = "kubernel"
POD_SUBNET = "10.245.0.0/24"
POD_GATEWAY = "10.245.0.1"
SERVICE_CIDR = "10.96.0.0/16"  # the Services' range (the API server allocates from it)
KUBERNETES_SERVICE_IP = "10.96.0.1"  # its first address
CLUSTER_DOMAIN = "cluster.local"
REGISTRY_HOST = "registry.kubernel.test"
"""The name kernels' images carry; containerd maps it to the local registry on loopback."""
PAUSE_IMAGE = f"{REGISTRY_HOST}/kubernel/pause:3.10"
PYTHON_IMAGE = f"{REGISTRY_HOST}/kubernel/python:3.11"
REAL_NODE_LABEL = "kubernel.io/real-node"
SIMULATED_NODE_LABEL = "kubernel.io/simulated-node"
SIMULATED_TAINT = {"key": SIMULATED_NODE_LABEL, "value": "true", "effect": "NoSchedule"}
"""On every simulated node: only sessions whose image table tolerates it go there."""
SIMULATED_SCHEDULING = {
    "nodeSelector": {SIMULATED_NODE_LABEL: "true"},
    "tolerations": [{"key": SIMULATED_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
}
"""The image-table scheduling that sends sessions to the simulated nodes (bench, scale tests)."""

# Kernel tunables the kubelet sets at start (protectKernelDefaults=false) and the
# forwarding the Pod network needs; saved at up and put back at down.
SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.bridge.bridge-nf-call-iptables",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)


@dataclass(frozen=True)
class NodeLayout:
    """Where the real node's files are (under the test bed's state directory)."""

    root: Path

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd.toml"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd.sock"

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd-state"

    @property
    def registry_hosts(self) -> Path:
        """containerd's hosts directory (``config_path``): one hosts.toml per registry name."""
        return self.root / "certs.d"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_data_dir(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet.yaml"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def kube_proxy_config(self) -> Path:
        return self.root / "kube-proxy.yaml"

    @property
    def corefile(self) -> Path:
        return self.root / "Corefile"

    @property
    def registry_config(self) -> Path:
        return self.root / "registry.yaml"

    @property
    def machine_state(self) -> Path:
        """What the machine had before the node started: kernel settings, iptables chains."""
        return self.root / "machine.json"


@dataclass(frozen=True)
class NodePorts:
    registry: int
    kubelet_healthz: int
    proxy_healthz: int
    proxy_metrics: int
    dns_health: int
    dns_ready: int


def registry_address(ports: NodePorts) -> str:
    return f"127.0.0.1:{ports.registry}"


# -- the registry --------------------------------------------------------------------
def registry_config(storage: Path, ports: NodePorts) -> str:
    """docker-registry (distribution v2) on loopback, plain HTTP, deletes allowed."""
    return (
        "version: 0.1\n"
        "log: {level: warn, formatter: text}\n"
        f"storage: {{filesystem: {{rootdirectory: '{storage}'}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '{registry_address(ports)}'}}\n"
    )


# -- containerd ----------------------------------------------------------------------
SECOND_HANDLER = "kubernel-runc"
"""A second handler (runc again) for the RuntimeClass of the same name: what an image's
``runtimeClassName`` reaches, end to end. gVisor cannot take its place here (docs/security.md)."""


def containerd_config(layout: NodeLayout) -> str:
    """containerd 1.6's CRI, with the four settings this kind of machine needs:
    ``restrict_oom_score_adj`` (no CAP_SYS_RESOURCE in the VM: without it every sandbox
    fails with "can't get final child's PID from pipe"), runc named as the default
    runtime, the registry hosts directory, and netns mounts kept under our state; and a
    second handler, ``SECOND_HANDLER``."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{layout.containerd_root}"
state = "{layout.containerd_state}"

[grpc]
  address = "{layout.containerd_socket}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true

[{cri}.containerd]
  default_runtime_name = "runc"
  snapshotter = "overlayfs"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.containerd.runtimes.{SECOND_HANDLER}]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.{SECOND_HANDLER}.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{layout.cni_conf_dir}"

[{cri}.registry]
  config_path = "{layout.registry_hosts}"
"""


def registry_hosts_toml(ports: NodePorts) -> str:
    """``REGISTRY_HOST`` served by the local registry over plain HTTP, with no fallback
    (so a registry that is down fails the pull with its own words)."""
    url = f"http://{registry_address(ports)}"
    return f'server = "{url}"\n\n[host."{url}"]\n  capabilities = ["pull", "resolve", "push"]\n'


def cni_config(layout: NodeLayout) -> str:
    """A bridge with the gateway on the host (so the host reaches Pod IPs), NAT for
    traffic leaving the Pod subnet, hairpin for a Pod reaching itself via a Service,
    and portmap for hostPorts."""
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": CNI_BRIDGE,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(layout.cni_data_dir),
                        "ranges": [[{"subnet": POD_SUBNET, "gateway": POD_GATEWAY}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def containerd(layout: NodeLayout) -> list[str]:
    return ["containerd", f"--config={layout.containerd_config}", "--log-level=warn"]


# -- the kubelet ---------------------------------------------------------------------
def kubelet_config(layout: NodeLayout, pki: Path, ports: NodePorts) -> dict:
    """KubeletConfiguration: client certificates from the test bed's CA, authorization
    by the API server, the cluster DNS on the node address, and thresholds that keep a
    test machine's disk usage from evicting Pods or collecting the pause image."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports.kubelet_healthz,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "clusterDNS": [NODE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "podLogsDir": str(layout.pod_logs),
        "serializeImagePulls": False,
        "maxPods": 110,
        "registerNode": True,
        # containerd 1.6 does not mark the sandbox image pinned; never collect images.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "shutdownGracePeriod": "0s",
        "logging": {"format": "text", "verbosity": 0},
    }


def kubelet(bin_dir: Path, layout: NodeLayout, kubeconfig: Path) -> list[str]:
    return [
        str(bin_dir / "kubelet"),
        f"--config={layout.kubelet_config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={layout.kubelet_root}",
        f"--cert-dir={layout.root / 'kubelet-pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={NODE_IP}",
        f"--node-labels={REAL_NODE_LABEL}=true",
    ]


# -- kube-proxy ----------------------------------------------------------------------
def kube_proxy_config(kubeconfig: Path, ports: NodePorts) -> dict:
    """iptables mode. ``masqueradeAll``: a Pod reaching a Service backed by a Pod on the
    same bridge gets the reply back through the host. The conntrack settings are left
    as the machine has them (0 = do not touch)."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "bindAddress": NODE_IP,
        "healthzBindAddress": f"127.0.0.1:{ports.proxy_healthz}",
        "metricsBindAddress": f"127.0.0.1:{ports.proxy_metrics}",
        "mode": "iptables",
        "clusterCIDR": POD_SUBNET,
        "iptables": {"masqueradeAll": True, "syncPeriod": "30s", "minSyncPeriod": "0s"},
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "nodePortAddresses": [f"{NODE_IP}/32"],
    }


def kube_proxy(bin_dir: Path, layout: NodeLayout) -> list[str]:
    return [str(bin_dir / "kube-proxy"), f"--config={layout.kube_proxy_config}"]


def kube_proxy_cleanup(bin_dir: Path) -> list[str]:
    """Removes the iptables rules kube-proxy made."""
    return [str(bin_dir / "kube-proxy"), "--cleanup"]


# -- NetworkPolicies ------------------------------------------------------------------
NETPOL_CHAIN = "KUBE-ROUTER-FORWARD"
"""kube-router's chain in FORWARD: there once its first sync is done."""
NETPOL_IPSET_PREFIXES = ("KUBE-SRC-", "KUBE-DST-", "TMP-")
"""kube-router's ipsets (TMP-: its scratch sets while it restores). Neither SIGTERM nor its
--cleanup-config (a no-op, then a panic, in v2.1.0) removes them: ``nodehost.clean`` does."""


def kube_router(bin_dir: Path, kubeconfig: Path) -> list[str]:
    """kube-router as the NetworkPolicy engine alone: its firewall (iptables and ipsets, on
    the bridge through br_netfilter), not its router, service proxy or CNI, and no SNAT
    of its own (the bridge plugin masquerades). Its ports are off: nothing else to serve."""
    return [
        str(bin_dir / "kube-router"),
        f"--kubeconfig={kubeconfig}",
        f"--hostname-override={NODE_NAME}",
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        "--run-loadbalancer=false",
        "--enable-cni=false",
        "--enable-pod-egress=false",
        "--enable-ipv6=false",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--health-port=0",
        "--metrics-port=0",
        "--iptables-sync-period=1m",
        "-v=1",
    ]


def netpol_ipsets(names: list[str]) -> list[str]:
    """kube-router's ipsets among ``names`` (``ipset list -n``)."""
    return [n for n in names if n.startswith(NETPOL_IPSET_PREFIXES)]


# -- cluster DNS ---------------------------------------------------------------------
def corefile(kubeconfig: Path, ports: NodePorts) -> str:
    """CoreDNS on the node address: Services and Pods of cluster.local from the API
    server, everything else forwarded to the host's resolvers."""
    return f"""{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{ports.dns_health}
    ready 127.0.0.1:{ports.dns_ready}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loadbalance
}}
.:53 {{
    bind {NODE_IP}
    errors
    forward . /etc/resolv.conf
    cache 30
}}
"""


def coredns(bin_dir: Path, layout: NodeLayout) -> list[str]:
    return [str(bin_dir / "coredns"), "-conf", str(layout.corefile)]


def registry(layout: NodeLayout) -> list[str]:
    return ["docker-registry", "serve", str(layout.registry_config)]


# -- what down removes ---------------------------------------------------------------
def mounts_under(mountinfo: str, root: Path) -> list[str]:
    """Mount points at or below ``root`` in /proc/self/mountinfo, deepest first."""
    prefix = str(root).rstrip("/")
    points = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].encode().decode("unicode_escape")  # \\040 for a space
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(set(points), key=lambda p: (-p.count("/"), p))


PORTMAP_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK")
"""The portmap plugin's shared chains (hostPort), made on the first hostPort's Pod."""


def our_iptables_rules(save: str) -> tuple[list[str], list[str]]:
    """From ``iptables-save -t nat`` output: the rules the CNI bridge and portmap plugins
    added for our network's containers (as ``-D`` arguments) and their per-container
    chains. The kubelet deletes them with each Pod; a stopped node leaves them behind, and
    a stale hostPort rule would send the next node's traffic to a dead address."""
    rules, chains = [], []
    for line in save.splitlines():  # iptables-save escapes the comment's quotes
        if (
            line.startswith(("-A POSTROUTING ", "-A CNI-HOSTPORT-DNAT "))
            and f'name: \\"{CNI_NETWORK}\\"' in line
        ):
            rules.append(line[3:])
    for rule in rules:
        parts = rule.split()
        if "-j" in parts:
            target = parts[parts.index("-j") + 1]
            if target.startswith("CNI-") and target not in chains:
                chains.append(target)
    return rules, chains


def unused_portmap_chains(save: str) -> list[str]:
    """The portmap plugin's shared chains once no container's hostPort is left in them
    (``iptables-save -t nat`` after our rules went): empty, so they go too."""
    if not any(line.startswith(f":{c} ") for line in save.splitlines() for c in PORTMAP_CHAINS):
        return []
    if any(line.startswith("-A CNI-HOSTPORT-DNAT ") for line in save.splitlines()):
        return []  # another network's hostPorts still use them
    return list(PORTMAP_CHAINS)


IPTABLES_TABLES = ("filter", "nat", "mangle")


def kube_chains(save: str) -> set[str]:
    """The ``KUBE-*`` chains in ``iptables-save -t <table>`` output (the kubelet's and kube-proxy's)."""
    return {line[1:].split()[0] for line in save.splitlines() if line.startswith(":KUBE-")}


def rules_into(save: str, chains: set[str]) -> list[str]:
    """Rules of other chains that jump into ``chains`` (as ``-D`` arguments), to remove first."""
    found = []
    for line in save.splitlines():
        parts = line.split()
        jumps = len(parts) > 3 and parts[0] == "-A" and parts[1] not in chains and "-j" in parts
        if jumps and parts[parts.index("-j") + 1] in chains:
            found.append(line[3:])
    return found
