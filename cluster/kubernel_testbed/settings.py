"""Typed settings of the local test bed, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS_FILE = REPO_ROOT / "cluster" / "versions.env"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


@dataclass(frozen=True)
class SimulatedDelays:
    """How long the simulated kubelet takes for each step, in milliseconds.

    Environment: ``KUBERNEL_SIM_<FIELD>_MS`` (e.g. ``KUBERNEL_SIM_PULL_MS=0``).
    """

    accept: int = 20
    """From scheduling to the kubelet admitting the Pod (Pending, ContainerCreating)."""
    pull: int = 300
    """From the ``Pulling`` Event to ``Pulled`` (or to ``Failed`` for an unpullable image)."""
    create: int = 50
    """From ``Pulled`` to ``Created``."""
    start: int = 100
    """From ``Created`` to ``Started`` with the Pod Running and Ready."""
    stop: int = 100
    """From the deletion request (``Killing``) to the Pod being gone."""

    @classmethod
    def from_env(cls) -> SimulatedDelays:
        defaults = cls()
        return cls(
            **{
                name: _env_int(f"KUBERNEL_SIM_{name.upper()}_MS", getattr(defaults, name))
                for name in cls.__dataclass_fields__
            }
        )


@dataclass(frozen=True)
class NodeShape:
    """The simulated nodes: how many and what each can hold."""

    count: int = 3
    """Number of simulated nodes (``KUBERNEL_SIM_NODES``)."""
    cpu: str = "64"
    """Allocatable CPU of each node."""
    memory: str = "256Gi"
    """Allocatable memory of each node."""
    gpus: str = "4"
    """Allocatable ``nvidia.com/gpu`` of each node."""
    pods: str = "500"
    """Pods each node accepts."""


@dataclass(frozen=True)
class TestbedSettings:
    """Where the test bed lives and how it is shaped."""

    state_dir: Path
    """Certificates, etcd data, logs and pid files (``KUBERNEL_TESTBED_DIR``)."""
    cache_dir: Path
    """Built binaries and their Go caches (``KUBERNEL_CACHE``), outside the repository."""
    delays: SimulatedDelays = field(default_factory=SimulatedDelays)
    nodes: NodeShape = field(default_factory=NodeShape)
    real_node: bool = True
    """Start the real node (containerd, kubelet, kube-proxy, CoreDNS, registry) beside the
    simulated ones (``KUBERNEL_REAL_NODE``, default 1; needs root and Debian's packages)."""

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig the test bed writes; see README 'The local control plane'."""
        return self.state_dir / "kubeconfig"

    @classmethod
    def from_env(cls) -> TestbedSettings:
        state = Path(os.environ.get("KUBERNEL_TESTBED_DIR", REPO_ROOT / ".local" / "testbed"))
        cache = Path(os.environ.get("KUBERNEL_CACHE", Path.home() / ".cache" / "kubernel"))
        return cls(
            state_dir=state.resolve(),
            cache_dir=cache,
            delays=SimulatedDelays.from_env(),
            nodes=NodeShape(count=_env_int("KUBERNEL_SIM_NODES", NodeShape.count)),
            real_node=os.environ.get("KUBERNEL_REAL_NODE", "1") not in ("0", "false", "no"),
        )


def pinned_versions() -> dict[str, str]:
    """The versions in cluster/versions.env (shared with cluster/build.sh)."""
    pins = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pins[key] = value
    return pins


def bin_dir(cache_dir: Path) -> Path:
    v = pinned_versions()
    return (
        cache_dir
        / (f"k8s-{v['KUBERNETES_VERSION']}-kwok-{v['KWOK_VERSION']}-helm-{v['HELM_VERSION']}")
        / "bin"
    )
