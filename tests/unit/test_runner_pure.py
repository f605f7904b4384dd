"""The code runner's pure parts: console items from Jupyter messages, the output cap,
run answers, batch plans, path confinement, cgroup figures, the identity."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from kubernel_runner import stats
from kubernel_runner.batch import plan
from kubernel_runner.identity import parse_identity
from kubernel_runner.paths import OutsideWorkdir, confine
from kubernel_runner.results import OutputBuffer, console_items
from kubernel_runner.runs import Run


@pytest.mark.parametrize(("msg_type", "content", "expected"), [
    ("stream", {"name": "stdout", "text": "hi\n"}, [("stdout", "hi\n")]),
    ("stream", {"name": "stderr", "text": "oops"}, [("stderr", "oops")]),
    ("execute_result", {"data": {"text/plain": "42"}}, [("stdout", "42\n")]),
    ("display_data", {"data": {"text/html": "<b>x</b>", "text/plain": "x"}}, [("html", "<b>x</b>")]),
    ("display_data", {"data": {"image/png": "iVBOR", "text/plain": "<Figure>"}}, [("media", ["image/png", "iVBOR"])]),
    ("error", {"ename": "ZeroDivisionError", "evalue": "division by zero",
               "traceback": ["\x1b[0;31mZeroDivisionError\x1b[0m", "division by zero"]},
     [("stderr", "ZeroDivisionError\ndivision by zero\n")]),
    ("status", {"execution_state": "busy"}, []),
    ("execute_input", {"code": "1"}, []),
])
def test_console_items(msg_type: str, content: dict, expected: list) -> None:
    assert console_items(msg_type, content) == expected


def test_the_output_cap_keeps_the_head_and_says_what_it_dropped() -> None:
    buffer = OutputBuffer(limit=10)
    buffer.add("stdout", "12345")
    buffer.add("stdout", "67890abc")
    buffer.add("stderr", "more")
    assert buffer.drain()[0] == ["stdout", "1234567890"]
    assert buffer.dropped == 7
    assert buffer.drain() == []  # announced once
    assert buffer.finish_note() == [["stderr", "[7 bytes of output dropped in all]\n"]]


async def test_a_run_answers_continued_then_finished() -> None:
    run = Run(output_limit=100)
    run.add("stdout", "a")
    first = await run.answer(0.01)
    assert (first["status"], first["console"]) == ("continued", [["stdout", "a"]])
    asyncio.get_running_loop().call_soon(run.finish, 0)
    done = await run.answer(5)
    assert (done["status"], done["exitCode"], done["runId"]) == ("finished", 0, run.id)


async def test_a_run_reports_input_requests_and_batch_stages_in_order() -> None:
    run = Run(output_limit=100)
    run.wait_input("name? ", password=True)
    asked = await run.answer(5)
    assert asked["status"] == "waiting-input" and asked["options"] == {"is_password": True}
    assert asked["console"] == [["stdout", "name? "]]
    run.resume()
    run.stage_finished("build-finished", 0)
    run.finish(3)
    assert [(r["status"], r["exitCode"]) for r in [await run.answer(1), await run.answer(1)]] == [
        ("build-finished", 0), ("finished", 3)]


@pytest.mark.parametrize(("options", "expected"), [
    ({"build": "make", "exec": "./a.out"}, [("build", "make", "build-finished"), ("exec", "./a.out", "finished")]),
    ({"clean": "rm -f x", "build": None, "exec": "*"},
     [("clean", "rm -f x", "clean-finished"), ("exec", "python3 main.py", "finished")]),
    ({"build": "*", "exec": "*"}, [("exec", "python3 main.py", "finished")]),
    ({}, []),
])
def test_batch_plans(options: dict, expected: list) -> None:
    assert plan(options) == expected


def test_paths_stay_in_the_working_directory(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    os.symlink("/etc", work / "etc-link")
    os.symlink("data", work / "inner-link")
    assert confine(work, "data") == work / "data"
    assert confine(work, str(work / "data" / "x.csv")) == work / "data" / "x.csv"
    assert confine(work, "inner-link") == work / "data"
    assert confine(work, ".") == work
    for escape in ("..", "../x", "/etc/passwd", "etc-link", "etc-link/passwd", "data/../../x", "", "a\x00b"):
        with pytest.raises(OutsideWorkdir):
            confine(work, escape)


@pytest.mark.parametrize(("files", "expected"), [
    ({"cpuacct/cpuacct.usage": "2500000000\n", "memory/memory.usage_in_bytes": "1048576\n",
      "memory/memory.max_usage_in_bytes": "2097152\n",
      "blkio/blkio.throttle.io_service_bytes": "8:0 Read 4096\n8:0 Write 512\n8:0 Total 4608\nTotal 4608\n"},
     {"cpu_used": 2500, "mem_cur_bytes": 1048576, "mem_max_bytes": 2097152, "io_read_bytes": 4096,
      "io_write_bytes": 512}),
    ({"cgroup.controllers": "cpu memory io\n", "cpu.stat": "usage_usec 1500000\nuser_usec 1000000\n",
      "memory.current": "300\n", "memory.peak": "900\n", "io.stat": "8:0 rbytes=10 wbytes=20 rios=1\n"},
     {"cpu_used": 1500, "mem_cur_bytes": 300, "mem_max_bytes": 900, "io_read_bytes": 10, "io_write_bytes": 20}),
    ({}, {"cpu_used": 0, "mem_cur_bytes": 0, "mem_max_bytes": 0, "io_read_bytes": 0, "io_write_bytes": 0}),
])
def test_cgroup_figures(files: dict, expected: dict) -> None:
    assert stats.figures(files) == expected


def test_identity() -> None:
    identity = parse_identity("t" * 20 + "\n", '{"sessionId": "s1", "ownerAccessKey": "AK", "environ": {"A": "1"}}')
    assert (identity.token, identity.session_id, identity.environ) == ("t" * 20, "s1", {"A": "1"})
    for token, document in (("short", "{}"), ("t" * 20, '{"environ": {"A": 1}}'), ("t" * 20, "not json")):
        with pytest.raises(ValueError):
            parse_identity(token, document)
