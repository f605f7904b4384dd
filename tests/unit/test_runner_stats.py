"""The runner's cgroup figures (kubernel_runner.stats): parsing, v1 and v2."""

from __future__ import annotations

import pytest

from kubernel_runner import stats

V2 = {
    "cgroup.controllers": "cpu io memory pids\n",
    "cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
    "memory.current": "1048576\n",
    "memory.peak": "4194304\n",
    "io.stat": "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n259:0 rbytes=1 wbytes=2\n",
    "memory.events": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n",
}
V1 = {
    "cpuacct/cpuacct.usage": "3000000000\n",
    "memory/memory.usage_in_bytes": "2048\n",
    "memory/memory.max_usage_in_bytes": "8192\n",
    "blkio/blkio.throttle.io_service_bytes": "8:0 Read 10\n8:0 Write 20\n8:0 Sync 30\n8:16 Read 5\nTotal 65\n",
    "memory/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            V2,
            {
                "cpu_used": 2500,
                "mem_cur_bytes": 1048576,
                "mem_max_bytes": 4194304,
                "io_read_bytes": 101,
                "io_write_bytes": 202,
            },
        ),
        (
            {**V2, "memory.peak": None},
            {
                "cpu_used": 2500,
                "mem_cur_bytes": 1048576,
                "mem_max_bytes": 1048576,
                "io_read_bytes": 101,
                "io_write_bytes": 202,
            },
        ),
        (
            V1,
            {
                "cpu_used": 3000,
                "mem_cur_bytes": 2048,
                "mem_max_bytes": 8192,
                "io_read_bytes": 15,
                "io_write_bytes": 20,
            },
        ),
        (
            {"cpu,cpuacct/cpuacct.usage": "1000000\n"},
            {"cpu_used": 1, "mem_cur_bytes": 0, "mem_max_bytes": 0, "io_read_bytes": 0, "io_write_bytes": 0},
        ),
        (
            {},
            {"cpu_used": 0, "mem_cur_bytes": 0, "mem_max_bytes": 0, "io_read_bytes": 0, "io_write_bytes": 0},
        ),
        (
            {"cgroup.controllers": "", "memory.current": "max\n", "cpu.stat": "garbage"},
            {"cpu_used": 0, "mem_cur_bytes": 0, "mem_max_bytes": 0, "io_read_bytes": 0, "io_write_bytes": 0},
        ),
    ],
)
def test_figures(files: dict, expected: dict) -> None:
    # No limit files here: the limits read 0 (none); their parsing is the next test's.
    assert stats.figures(files) == {"cpu_limit_millis": 0, "mem_limit_bytes": 0, **expected}


@pytest.mark.parametrize(
    ("files", "cpu", "memory"),
    [
        (
            {"cgroup.controllers": "", "cpu.max": "150000 100000\n", "memory.max": "536870912\n"},
            1500,
            536870912,
        ),
        ({"cgroup.controllers": "", "cpu.max": "max 100000\n", "memory.max": "max\n"}, 0, 0),
        (
            {
                "cpu/cpu.cfs_quota_us": "200000\n",
                "cpu/cpu.cfs_period_us": "100000\n",
                "memory/memory.limit_in_bytes": "1073741824\n",
            },
            2000,
            1 << 30,
        ),
        ({"cpu,cpuacct/cpu.cfs_quota_us": "50000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 500, 0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0, 0),  # no CPU limit
    ],
)
def test_the_limits_the_container_runs_under(files: dict, cpu: int, memory: int) -> None:
    figures = stats.figures(files)
    assert (figures["cpu_limit_millis"], figures["mem_limit_bytes"]) == (cpu, memory)


@pytest.mark.parametrize(
    ("files", "expected"), [(V2, 1), (V1, 2), ({}, 0), ({"memory.events": "oom 3\n"}, 0)]
)
def test_oom_kills(files: dict, expected: int) -> None:
    assert stats.oom_kills(files) == expected


def test_reading_a_missing_cgroup_gives_zeros(tmp_path) -> None:
    assert set(stats.read(tmp_path).values()) == {0}


def test_a_warm_kernels_figures_count_from_its_bind() -> None:
    at_bind = {
        "cpu_used": 1500,
        "mem_cur_bytes": 9,
        "mem_max_bytes": 20,
        "io_read_bytes": 7,
        "io_write_bytes": 0,
    }
    later = {
        "cpu_used": 1600,
        "mem_cur_bytes": 5,
        "mem_max_bytes": 30,
        "io_read_bytes": 10,
        "io_write_bytes": 4,
    }
    before = stats.cumulative(at_bind)
    assert before == {"cpu_used": 1500, "io_read_bytes": 7, "io_write_bytes": 0}
    assert stats.since(later, before) == {
        "cpu_used": 100,
        "mem_cur_bytes": 5,  # what it holds now is the session's
        "mem_max_bytes": 30,
        "io_read_bytes": 3,
        "io_write_bytes": 4,
    }
    assert stats.since(later, {}) == later  # a cold kernel's are all its session's
