"""What the real node does to the machine, and how ``down`` undoes it (I/O).

``prepare`` gives the node its address and the forwarding the Pod network needs,
saving the kernel settings it (and the kubelet) changes; ``clean`` kills what the
node's containers left running and removes their mounts, network namespaces,
interfaces, iptables rules and cgroups, then puts the settings back. ``clean``
assumes nothing about how the node stopped, so it also clears up after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from . import node

CGROUP_ROOT = Path("/sys/fs/cgroup")
REQUIRED = {
    "containerd": "containerd",
    "runc": "runc",
    "ctr": "containerd",
    "conntrack": "conntrack",
    "iptables": "iptables",
    "ipset": "ipset",
    "docker-registry": "docker-registry",
    "skopeo": "skopeo",
    "umoci": "umoci",
    "debootstrap": "debootstrap",
}
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")


def missing_prerequisites() -> list[str]:
    """What the real node needs and this machine lacks (root, Debian packages)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (containerd, the kubelet and the Pod network need it)")
    for command, package in REQUIRED.items():
        if shutil.which(command) is None and not Path("/usr/sbin", command).exists():
            missing.append(f"{command} (Debian package {package})")
    for plugin in CNI_PLUGINS:
        if not Path("/usr/lib/cni", plugin).exists():
            missing.append(f"/usr/lib/cni/{plugin} (Debian package containernetworking-plugins)")
    return missing


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys", *key.split("."))


CNI_CACHE = Path("/var/lib/cni")  # libcni's result cache (containerd 1.6 does not move it)


def _iptables_save(table: str) -> str:
    return _run("iptables-save", "-t", table, check=False).stdout


def has_chain(table: str, chain: str) -> bool:
    return f":{chain} " in _iptables_save(table)


def _ipsets() -> list[str]:
    return _run("ipset", "list", "-n", check=False).stdout.split()


def prepare(layout: node.NodeLayout) -> None:
    """The node address and IP forwarding. What the machine had before (kernel settings,
    Kubernetes iptables chains, libcni's cache directory) is saved once, for ``clean``."""
    if not layout.machine_state.exists():
        before = {
            "sysctls": {
                k: _sysctl_path(k).read_text().strip() for k in node.SYSCTLS if _sysctl_path(k).exists()
            },
            "chains": {t: sorted(node.kube_chains(_iptables_save(t))) for t in node.IPTABLES_TABLES},
            "ipsets": node.netpol_ipsets(_ipsets()),
            "cni_cache_existed": CNI_CACHE.exists(),
        }
        layout.machine_state.parent.mkdir(parents=True, exist_ok=True)
        layout.machine_state.write_text(json.dumps(before))
    if _run("ip", "link", "show", node.NODE_LINK, check=False).returncode != 0:
        _run("ip", "link", "add", node.NODE_LINK, "type", "bridge")
    _run("ip", "addr", "replace", f"{node.NODE_IP}/32", "dev", node.NODE_LINK)
    _run("ip", "link", "set", node.NODE_LINK, "up")
    for key in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"):
        if _sysctl_path(key).exists():
            _sysctl_path(key).write_text("1")


def _cgroup_dirs() -> list[Path]:
    """Every kubepods cgroup the kubelet made, deepest first (cgroup v1: one tree per controller)."""
    found = [p for p in CGROUP_ROOT.glob("*/kubepods") if p.is_dir()]
    found += [p for p in CGROUP_ROOT.glob("kubepods*") if p.is_dir()]  # cgroup v2
    dirs = []
    for top in found:
        dirs += [Path(d) for d, _, _ in os.walk(top)]
    return sorted(set(dirs), key=lambda p: -len(p.parts))


def _kill_containers() -> int:
    """SIGKILL every process in the kubelet's Pod cgroups; how many there were."""
    pids: set[int] = set()
    for d in _cgroup_dirs():
        try:
            pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        except OSError:
            continue
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def _kill_shims(layout: node.NodeLayout) -> None:
    """containerd's shims outlive containerd; ours name our socket on their command line."""
    marker = str(layout.containerd_socket).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmdline and marker in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


def _unmount_all(root: Path) -> None:
    for point in node.mounts_under(Path("/proc/self/mountinfo").read_text(), root):
        _run("umount", "-l", point, check=False)


def _remove_chains(chains: list[str], save: str) -> None:
    for rule in node.rules_into(save, set(chains)):
        _run("iptables", "-t", "nat", "-D", *shlex.split(rule), check=False)
    for chain in chains:
        _run("iptables", "-t", "nat", "-F", chain, check=False)
    for chain in chains:
        _run("iptables", "-t", "nat", "-X", chain, check=False)


def _remove_iptables() -> None:
    save = _run("iptables-save", "-t", "nat", check=False).stdout
    rules, chains = node.our_iptables_rules(save)
    for rule in rules:
        _run("iptables", "-t", "nat", "-D", *shlex.split(rule), check=False)
    _remove_chains(chains, _run("iptables-save", "-t", "nat", check=False).stdout)
    save = _run("iptables-save", "-t", "nat", check=False).stdout
    _remove_chains(node.unused_portmap_chains(save), save)


def _remove_cgroups() -> None:
    for d in _cgroup_dirs():
        with contextlib.suppress(OSError):
            d.rmdir()


def _remove_kube_chains(before: dict[str, list[str]]) -> None:
    """The kubelet's and kube-proxy's chains that were not there before (kube-proxy's
    ``--cleanup`` leaves its canaries, and the kubelet has no clean-up of its own)."""
    for table in node.IPTABLES_TABLES:
        save = _iptables_save(table)
        ours = node.kube_chains(save) - set(before.get(table, []))
        for rule in node.rules_into(save, ours):
            _run("iptables", "-t", table, "-D", *shlex.split(rule), check=False)
        for chain in ours:
            _run("iptables", "-t", table, "-F", chain, check=False)
        for chain in ours:
            _run("iptables", "-t", table, "-X", chain, check=False)


def _restore_machine(layout: node.NodeLayout) -> None:
    if not layout.machine_state.exists():
        return
    before = json.loads(layout.machine_state.read_text())
    for key, value in before["sysctls"].items():
        with contextlib.suppress(OSError):
            _sysctl_path(key).write_text(value)
    _remove_kube_chains(before["chains"])
    for name in set(node.netpol_ipsets(_ipsets())) - set(before.get("ipsets", [])):
        _run("ipset", "destroy", name, check=False)  # after the rules that used them
    if not before["cni_cache_existed"]:
        shutil.rmtree(CNI_CACHE, ignore_errors=True)
    layout.machine_state.unlink()


def clean(layout: node.NodeLayout, bin_dir: Path, stop: Callable[[str], None]) -> None:
    """Undo everything the node made. ``stop`` stops a test bed component by name."""
    for name in ("kube-router", "kubelet", "kube-proxy", "coredns"):
        stop(name)
    _kill_containers()
    stop("containerd")
    _kill_shims(layout)
    stop("registry")
    _unmount_all(layout.root)
    for link in (node.CNI_BRIDGE, node.NODE_LINK):
        _run("ip", "link", "del", link, check=False)
    if (bin_dir / "kube-proxy").exists():
        _run(*node.kube_proxy_cleanup(bin_dir), check=False)
    _remove_iptables()
    for cached in (CNI_CACHE / "results").glob(f"{node.CNI_NETWORK}-*"):
        cached.unlink(missing_ok=True)
    _remove_cgroups()
    _restore_machine(layout)


def leftovers(layout: node.NodeLayout) -> list[str]:
    """What a stopped node left on the machine (empty after a clean ``clean``)."""
    found = []
    for link in (node.NODE_LINK, node.CNI_BRIDGE):
        if _run("ip", "link", "show", link, check=False).returncode == 0:
            found.append(f"link {link}")
    found += [f"mount {m}" for m in node.mounts_under(Path("/proc/self/mountinfo").read_text(), layout.root)]
    found += [f"cgroup {d}" for d in _cgroup_dirs()]
    marker = str(layout.containerd_socket).encode()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes():
                found.append(f"process {proc.name}")
        except OSError:
            continue
    if layout.machine_state.exists():
        found.append(f"unrestored {layout.machine_state}")
    if has_chain("filter", node.NETPOL_CHAIN):
        found.append(f"iptables filter chain {node.NETPOL_CHAIN}")
    found += [f"ipset {name}" for name in node.netpol_ipsets(_ipsets())]
    save = _iptables_save("nat")
    rules, _chains = node.our_iptables_rules(save)
    found += [f"iptables nat rule {rule}" for rule in rules]
    found += [f"iptables nat chain {chain}" for chain in node.unused_portmap_chains(save)]
    return found
