"""What each keypair holds (pure; fed by the sessions informer): its sessions, live and
ended alike, and the cpu, memory and GPUs its live sessions ask for.

An ended session stays until its retention passes, and every one is an object in etcd
and in each service's memory, so a keypair may hold at most so many at once
(``KUBERNEL_API_SESSIONS_PER_KEYPAIR``), whatever its ``concurrentSessions``. Its live
sessions' resources are held against its ``totalCpu``, ``totalMemory`` and ``totalGpu``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from kubernel.jsondict import JsonDict
from kubernel.lifecycle import Phase
from kubernel.model import KernelSessionSpec
from kubernel.quantity import parse_quantity

from .limits import Limits

Key = tuple[str, str]
Change = tuple[JsonDict | None, JsonDict | None]  # (before, after), as the informer publishes them


@dataclass(frozen=True)
class Usage:
    """Resources asked for: cores, bytes, devices (every kernel of the session)."""

    cpu: Decimal = Decimal(0)
    memory: Decimal = Decimal(0)
    gpu: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.cpu + other.cpu, self.memory + other.memory, self.gpu + other.gpu)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.cpu - other.cpu, self.memory - other.memory, self.gpu - other.gpu)


def owner_of(body: JsonDict) -> str:
    return str(((body.get("spec") or {}).get("owner") or {}).get("accessKey") or "")


def usage_of(body: JsonDict) -> Usage:
    """What a session asks for while it lives; nothing once it ended or is being deleted."""
    if (body.get("status") or {}).get("phase") == Phase.TERMINATED or body["metadata"].get(
        "deletionTimestamp"
    ):
        return Usage()
    spec = body.get("spec") or {}
    resources = spec.get("resources") or {}
    kernels = int(spec.get("clusterSize") or 1)
    try:
        return Usage(
            parse_quantity(resources.get("cpu", "1")) * kernels,
            parse_quantity(resources.get("memory", "1Gi")) * kernels,
            int(resources.get("gpu") or 0) * kernels,
        )
    except (ValueError, TypeError):  # the CRD's schema keeps these well-formed
        return Usage()


class Holdings:
    def __init__(self) -> None:
        self._held: dict[Key, tuple[str, Usage]] = {}
        self._sessions: Counter[str] = Counter()
        self._usage: dict[str, Usage] = {}

    def held(self, access_key: str) -> int:
        """Sessions of ``access_key``, live and ended."""
        return self._sessions[access_key]

    def usage(self, access_key: str) -> Usage:
        """What the live sessions of ``access_key`` ask for."""
        return self._usage.get(access_key, Usage())

    def on_change(self, _previous: str, _rv: str, changes: list[Change]) -> None:
        for old, new in changes:
            meta = (new or old or {}).get("metadata") or {}
            key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
            before = self._held.pop(key, None)
            if before is not None:
                owner, usage = before
                self._sessions[owner] -= 1
                if not self._sessions[owner]:
                    del self._sessions[owner]
                    self._usage.pop(owner, None)
                else:
                    self._usage[owner] = self._usage[owner] - usage
            if new is not None:
                owner, usage = owner_of(new), usage_of(new)
                self._held[key] = (owner, usage)
                self._sessions[owner] += 1
                self._usage[owner] = self._usage.get(owner, Usage()) + usage


def asked_by(spec: KernelSessionSpec) -> Usage:
    kernels = spec.cluster_size
    return Usage(
        parse_quantity(spec.resources.cpu) * kernels,
        parse_quantity(spec.resources.memory) * kernels,
        spec.resources.gpu * kernels,
    )


def beyond_totals(held: Usage, asked: Usage, limits: Limits) -> list[str]:
    """What a new session would take its keypair past (``totalCpu`` ...); empty if nothing."""
    after = held + asked
    problems = []
    if limits.total_cpu is not None and after.cpu > parse_quantity(limits.total_cpu):
        problems.append(f"cpu {after.cpu.normalize():f} in all > {limits.total_cpu}")
    if limits.total_memory is not None and after.memory > parse_quantity(limits.total_memory):
        problems.append(f"memory {after.memory.normalize():f} bytes in all > {limits.total_memory}")
    if limits.total_gpu is not None and after.gpu > limits.total_gpu:
        problems.append(f"gpu {after.gpu} in all > {limits.total_gpu}")
    return problems
