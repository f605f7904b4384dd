"""The real node's configuration (pure): what containerd, the kubelet, kube-proxy and
CoreDNS are told, and what `down` finds to remove."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from kubernel_testbed import node

LAYOUT = node.NodeLayout(root=Path("/state/node"))
PORTS = node.NodePorts(
    registry=5001,
    kubelet_healthz=5002,
    proxy_healthz=5003,
    proxy_metrics=5004,
    dns_health=5005,
    dns_ready=5006,
)


def test_containerd_has_the_settings_this_machine_needs() -> None:
    config = tomllib.loads(node.containerd_config(LAYOUT))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True  # no CAP_SYS_RESOURCE in the VM
    assert cri["containerd"]["default_runtime_name"] == "runc"
    assert cri["containerd"]["runtimes"]["runc"]["runtime_type"] == "io.containerd.runc.v2"
    assert cri["registry"]["config_path"] == "/state/node/certs.d"
    assert cri["netns_mounts_under_state_dir"] is True  # down finds them under the state
    assert cri["sandbox_image"] == node.PAUSE_IMAGE
    assert config["grpc"]["address"] == "/state/node/containerd.sock"
    assert cri["containerd"]["runtimes"]["kubernel-runc"]["runtime_type"] == "io.containerd.runc.v2"


def test_the_registry_name_maps_to_loopback_over_http_without_fallback() -> None:
    hosts = tomllib.loads(node.registry_hosts_toml(PORTS))
    assert hosts["server"] == "http://127.0.0.1:5001"
    assert list(hosts["host"]) == ["http://127.0.0.1:5001"]


def test_pod_network_is_a_bridge_the_host_routes_to() -> None:
    [bridge, portmap] = json.loads(node.cni_config(LAYOUT))["plugins"]
    assert bridge["bridge"] == node.CNI_BRIDGE and bridge["isGateway"] and bridge["ipMasq"]
    assert bridge["ipam"]["ranges"] == [[{"subnet": node.POD_SUBNET, "gateway": node.POD_GATEWAY}]]
    assert bridge["ipam"]["dataDir"].startswith("/state/node/")  # IPAM state is ours to remove
    assert portmap["type"] == "portmap"


def test_kubelet_uses_the_node_address_the_cluster_dns_and_never_collects_images() -> None:
    config = node.kubelet_config(LAYOUT, Path("/state/pki"), PORTS)
    assert config["address"] == node.NODE_IP and config["clusterDNS"] == [node.NODE_IP]
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["authorization"]["mode"] == "Webhook"
    assert config["imageGCHighThresholdPercent"] == 100  # the pause image stays
    assert config["containerRuntimeEndpoint"] == "unix:///state/node/containerd.sock"


def test_kube_proxy_masquerades_service_traffic_and_leaves_conntrack_alone() -> None:
    config = node.kube_proxy_config(Path("/state/kubeconfig"), PORTS)
    assert config["mode"] == "iptables" and config["iptables"]["masqueradeAll"] is True
    assert config["conntrack"]["maxPerCore"] == 0 and config["conntrack"]["min"] == 0


def test_coredns_serves_the_cluster_domain_on_the_node_address() -> None:
    corefile = node.corefile(Path("/state/kubeconfig"), PORTS)
    assert f"bind {node.NODE_IP}" in corefile and "kubernetes cluster.local" in corefile
    assert "kubeconfig /state/kubeconfig" in corefile and "ready 127.0.0.1:5006" in corefile


def test_mounts_under_the_state_deepest_first() -> None:
    mountinfo = "\n".join(
        [
            "22 1 0:21 / /proc rw - proc proc rw",
            "90 1 0:50 / /state/node/kubelet/pods/x/volumes/tmpfs rw - tmpfs tmpfs rw",
            "91 1 0:51 / /state/node/containerd-state/io/k8s/abc/rootfs rw - overlay overlay rw",
            "92 1 0:4 net:[4026532] /state/node/containerd-state/netns/cni-1 rw - nsfs nsfs rw",
            "93 1 0:52 / /state/nodes-other rw - tmpfs tmpfs rw",
            "94 1 0:53 / /state/node/with\\040space rw - tmpfs tmpfs rw",
        ]
    )
    assert node.mounts_under(mountinfo, Path("/state/node")) == [
        "/state/node/containerd-state/io/k8s/abc/rootfs",
        "/state/node/kubelet/pods/x/volumes/tmpfs",
        "/state/node/containerd-state/netns/cni-1",
        "/state/node/with space",
    ]


def test_the_cni_plugins_masquerade_rules_of_our_network_only() -> None:
    save = "\n".join(
        [
            '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
            '-A POSTROUTING -s 10.245.0.16/32 -m comment --comment "name: \\"kubernel\\" id: \\"bf83\\"" -j CNI-16e4',
            '-A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \\"other\\" id: \\"aa\\"" -j CNI-99',
            '-A CNI-16e4 -d 10.245.0.0/24 -m comment --comment "name: \\"kubernel\\" id: \\"bf83\\"" -j ACCEPT',
        ]
    )
    rules, chains = node.our_iptables_rules(save)
    assert rules == [
        'POSTROUTING -s 10.245.0.16/32 -m comment --comment "name: \\"kubernel\\" id: \\"bf83\\"" -j CNI-16e4'
    ]
    assert chains == ["CNI-16e4"]


PORTMAP_SAVE = "\n".join(
    [
        ":CNI-HOSTPORT-DNAT - [0:0]",
        ":CNI-HOSTPORT-MASQ - [0:0]",
        ":CNI-HOSTPORT-SETMARK - [0:0]",
        ":CNI-DN-f8dab - [0:0]",
        "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
        '-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"kubernel\\" id: \\"0998\\"" '
        "-m multiport --dports 80 -j CNI-DN-f8dab",
        '-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"other\\" id: \\"77\\"" '
        "-m multiport --dports 8080 -j CNI-DN-0ther",
        "-A CNI-DN-f8dab -d 10.246.0.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.245.0.26:8000",
    ]
)


def test_a_stopped_node_s_host_ports_are_ours_to_remove() -> None:
    rules, chains = node.our_iptables_rules(PORTMAP_SAVE)
    assert rules == [
        'CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"kubernel\\" id: \\"0998\\"" '
        "-m multiport --dports 80 -j CNI-DN-f8dab"
    ]
    assert chains == ["CNI-DN-f8dab"]


@pytest.mark.parametrize(
    ("save", "unused"),
    [
        ("", []),  # the plugin never ran here
        (PORTMAP_SAVE, []),  # host ports still in use (ours, and another network's)
        (
            "\n".join(
                line for line in PORTMAP_SAVE.splitlines() if not line.startswith("-A CNI-HOSTPORT-DNAT")
            ),
            ["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"],
        ),
    ],
)
def test_the_portmap_chains_go_once_no_host_port_uses_them(save: str, unused: list[str]) -> None:
    assert node.unused_portmap_chains(save) == unused


SAVE_FILTER = """*filter
:INPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:OTHER - [0:0]
-A INPUT -j KUBE-FIREWALL
-A OUTPUT -j KUBE-FIREWALL
-A INPUT -j OTHER
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -j DROP
COMMIT"""


def test_kubernetes_chains_and_the_rules_that_lead_into_them() -> None:
    chains = node.kube_chains(SAVE_FILTER)
    assert chains == {"KUBE-FIREWALL", "KUBE-KUBELET-CANARY"}
    assert node.rules_into(SAVE_FILTER, chains) == ["INPUT -j KUBE-FIREWALL", "OUTPUT -j KUBE-FIREWALL"]
    assert node.rules_into(SAVE_FILTER, {"KUBE-KUBELET-CANARY"}) == []
