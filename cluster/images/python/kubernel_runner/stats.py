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


def figures(files: dict[str, str | None]) -> dict[str, int]:
    """Stats from the cgroup files' contents (keys: their paths under /sys/fs/cgroup)."""
    if files.get("cgroup.controllers") is not None:  # v2
        read, write = io_stat_bytes(files.get("io.stat"))
        current = _int(files.get("memory.current"))
        return {
            "cpu_used": cpu_stat_usec(files.get("cpu.stat")) // 1000,
            "mem_cur_bytes": current,
            "mem_max_bytes": max(current, _int(files.get("memory.peak"))),  # no memory.peak before Linux 5.19
            "io_read_bytes": read,
            "io_write_bytes": write,
        }
    cpu_ns = _int(files.get("cpuacct/cpuacct.usage") or files.get("cpu,cpuacct/cpuacct.usage"))
    read, write = blkio_bytes(files.get("blkio/blkio.throttle.io_service_bytes"))
    return {
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
