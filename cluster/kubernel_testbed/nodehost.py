"""What the real node does to the machine, and how ``down`` undoes it (I/O).

``prepare`` gives the node its address and the forwarding the Pod network needs,
saving the kernel settings it (and the kubelet) changes; ``clean`` kills what the
node's containers left running and removes their mounts, network namespaces,
interfaces, iptables rules and cgroups, then puts the settings back. ``clean``
assumes nothing about how the node stopped, so it also clears up after a crash.
"""

from __future__ import annotations

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
    "containerd": "containerd", "runc": "runc", "ctr": "containerd", "conntrack": "conntrack",
    "iptables": "iptables", "docker-registry": "docker-registry", "skopeo": "skopeo",
    "umoci": "umoci", "debootstrap": "debootstrap",
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


def prepare(layout: node.NodeLayout) -> None:
    """The node address and IP forwarding; the previous kernel settings are saved once."""
    if not layout.sysctls.exists():
        saved = {k: _sysctl_path(k).read_text().strip() for k in node.SYSCTLS if _sysctl_path(k).exists()}
        layout.sysctls.parent.mkdir(parents=True, exist_ok=True)
        layout.sysctls.write_text(json.dumps(saved))
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
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
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
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _unmount_all(root: Path) -> None:
    for point in node.mounts_under(Path("/proc/self/mountinfo").read_text(), root):
        _run("umount", "-l", point, check=False)


def _remove_iptables() -> None:
    save = _run("iptables-save", "-t", "nat", check=False).stdout
    rules, chains = node.our_iptables_rules(save)
    for rule in rules:
        _run("iptables", "-t", "nat", "-D", *shlex.split(rule), check=False)
    for chain in chains:
        _run("iptables", "-t", "nat", "-F", chain, check=False)
        _run("iptables", "-t", "nat", "-X", chain, check=False)


def _remove_cgroups() -> None:
    for d in _cgroup_dirs():
        try:
            d.rmdir()
        except OSError:
            pass


def _restore_sysctls(layout: node.NodeLayout) -> None:
    if not layout.sysctls.exists():
        return
    for key, value in json.loads(layout.sysctls.read_text()).items():
        try:
            _sysctl_path(key).write_text(value)
        except OSError:
            pass
    layout.sysctls.unlink()


def clean(layout: node.NodeLayout, bin_dir: Path, stop: Callable[[str], None]) -> None:
    """Undo everything the node made. ``stop`` stops a test bed component by name."""
    for name in ("kubelet", "kube-proxy", "coredns"):
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
    for cached in Path("/var/lib/cni/results").glob(f"{node.CNI_NETWORK}-*"):
        cached.unlink(missing_ok=True)
    _remove_cgroups()
    _restore_sysctls(layout)
