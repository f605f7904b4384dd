"""The container's own figures from its cgroup (v1 or v2): parsing is pure, reading is thin."""

from __future__ import annotations

from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _int(text: str | None) -> int:
    try:
        return int((text or "").split()[0])
    except (ValueError, IndexError):
        return 0


def blkio_bytes(text: str | None) -> tuple[int, int]:
    """cgroup v1 ``blkio.throttle.io_service_bytes``: (read, write) summed over devices."""
    read = write = 0
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "Read":
            read += _int(parts[2])
        elif len(parts) == 3 and parts[1] == "Write":
            write += _int(parts[2])
    return read, write


def io_stat_bytes(text: str | None) -> tuple[int, int]:
    """cgroup v2 ``io.stat``: (rbytes, wbytes) summed over devices."""
    read = write = 0
    for line in (text or "").splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if key == "rbytes":
                read += _int(value)
            elif key == "wbytes":
                write += _int(value)
    return read, write


def cpu_stat_usec(text: str | None) -> int:
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return _int(value)
    return 0


def limits_v1(files: dict[str, str | None]) -> dict[str, int]:
    """The container's CPU limit (millicores; 0: none) and memory limit (bytes), v1."""
    quota = files.get("cpu/cpu.cfs_quota_us") or files.get("cpu,cpuacct/cpu.cfs_quota_us")
    period = _int(files.get("cpu/cpu.cfs_period_us") or files.get("cpu,cpuacct/cpu.cfs_period_us"))
    quota_us = _int(quota)
    return {
        "cpu_limit_millis": quota_us * 1000 // period if quota_us > 0 and period else 0,
        "mem_limit_bytes": _int(files.get("memory/memory.limit_in_bytes")),
    }


def limits_v2(files: dict[str, str | None]) -> dict[str, int]:
    """The same from v2's ``cpu.max`` (``<quota> <period>`` or ``max <period>``) and ``memory.max``."""
    quota, _, period = (files.get("cpu.max") or "").strip().partition(" ")
    memory = (files.get("memory.max") or "").strip()
    return {
        "cpu_limit_millis": int(quota) * 1000 // int(period) if quota.isdigit() and period.isdigit() else 0,
        "mem_limit_bytes": int(memory) if memory.isdigit() else 0,
    }


def figures(files: dict[str, str | None]) -> dict[str, int]:
    """Stats from the cgroup files' contents (keys: their paths under /sys/fs/cgroup), with
    the limits the container runs under now (a warm kernel's are resized at its claim)."""
    if files.get("cgroup.controllers") is not None:  # v2
        read, write = io_stat_bytes(files.get("io.stat"))
        current = _int(files.get("memory.current"))
        return {
            **limits_v2(files),
            "cpu_used": cpu_stat_usec(files.get("cpu.stat")) // 1000,
            "mem_cur_bytes": current,
            "mem_max_bytes": max(current, _int(files.get("memory.peak"))),  # no memory.peak before Linux 5.19
            "io_read_bytes": read,
            "io_write_bytes": write,
        }
    cpu_ns = _int(files.get("cpuacct/cpuacct.usage") or files.get("cpu,cpuacct/cpuacct.usage"))
    read, write = blkio_bytes(files.get("blkio/blkio.throttle.io_service_bytes"))
    return {
        **limits_v1(files),
        "cpu_used": cpu_ns // 1_000_000,
        "mem_cur_bytes": _int(files.get("memory/memory.usage_in_bytes")),
        "mem_max_bytes": _int(files.get("memory/memory.max_usage_in_bytes")),
        "io_read_bytes": read,
        "io_write_bytes": write,
    }


CUMULATIVE = ("cpu_used", "io_read_bytes", "io_write_bytes")


def cumulative(figures: dict[str, int]) -> dict[str, int]:
    """The figures that only grow (a warm kernel's, at its bind, are its start's, not the session's)."""
    return {k: figures[k] for k in CUMULATIVE if k in figures}


def since(figures: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """``figures`` counted from ``before`` (``cumulative`` of an earlier reading)."""
    return {k: max(0, v - before.get(k, 0)) if k in CUMULATIVE else v for k, v in figures.items()}


def oom_kills(files: dict[str, str | None]) -> int:
    """Processes of the container the OOM killer ended: ``oom_kill`` of v2 ``memory.events``
    or v1 ``memory.oom_control`` (older v1 kernels lack it: 0)."""
    for name in ("memory.events", "memory/memory.oom_control"):
        for line in (files.get(name) or "").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return _int(value)
    return 0


FILES = (
    "cgroup.controllers",
    "memory.events",
    "memory/memory.oom_control",
    "cpu.stat",
    "memory.current",
    "memory.peak",
    "io.stat",
    "cpuacct/cpuacct.usage",
    "cpu,cpuacct/cpuacct.usage",
    "memory/memory.usage_in_bytes",
    "memory/memory.max_usage_in_bytes",
    "blkio/blkio.throttle.io_service_bytes",
    "cpu.max",
    "memory.max",
    "cpu/cpu.cfs_quota_us",
    "cpu/cpu.cfs_period_us",
    "cpu,cpuacct/cpu.cfs_quota_us",
    "cpu,cpuacct/cpu.cfs_period_us",
    "memory/memory.limit_in_bytes",
)


def read_files(root: Path = CGROUP) -> dict[str, str | None]:
    """The cgroup files' contents; a missing or unreadable one is None."""
    contents: dict[str, str | None] = {}
    for name in FILES:
        try:
            contents[name] = (root / name).read_text()
        except OSError:
            contents[name] = None
    return contents


def read(root: Path = CGROUP) -> dict[str, int]:
    return figures(read_files(root))
