"""The code runner as a process on this host (no cluster): its port, its token, its
interpreter and its ends. In a container it also drops to the kernel user; that part
is tested on the real node (tests/integration/test_code.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from kubernel_testbed.polling import free_port

from ..waiting import wait_until

TOKEN = "runner-test-token-0123456789"


@dataclass
class RunningRunner:
    process: subprocess.Popen
    url: str
    workdir: Path
    http: aiohttp.ClientSession

    async def call(self, method: str, path: str, token: str | None = TOKEN, **kwargs: object) -> tuple[int, object]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.url + path, headers=headers, **kwargs) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if text else None

    async def execute(self, code: str = "", mode: str = "query", run_id: str | None = None) -> dict:
        status, body = await self.call("POST", "/execute", json={"mode": mode, "code": code, "runId": run_id})
        assert status == 200, body
        return body  # type: ignore[return-value]


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[RunningRunner]:
    identity, workdir = tmp_path / "identity", tmp_path / "work"
    identity.mkdir()
    workdir.mkdir()
    (identity / "token").write_text(TOKEN)
    (identity / "identity.json").write_text(json.dumps({"sessionId": "s1", "environ": {"GREETING": "hello"}}))
    port = free_port()
    env = {**os.environ, "KUBERNEL_RUNNER_PORT": str(port), "KUBERNEL_RUNNER_IDENTITY": str(identity),
           "KUBERNEL_RUNNER_WORKDIR": str(workdir), "KUBERNEL_RUNNER_CONTINUE_SECONDS": "1",
           "KUBERNEL_RUNNER_UPLOAD_LIMIT": "1000", "KUBERNEL_RUNNER_OUTPUT_LIMIT": "5000"}
    process = subprocess.Popen([sys.executable, "-m", "kubernel_runner"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    async with aiohttp.ClientSession() as http:
        running = RunningRunner(process, f"http://127.0.0.1:{port}", workdir, http)

        async def ready() -> bool:
            try:
                return (await running.call("GET", "/health?wait=5", token=None))[0] == 200
            except aiohttp.ClientError:
                return False

        await wait_until(ready, timeout=60, what="the runner ready")
        yield running
    if process.poll() is None:
        process.kill()
    process.wait()
    process.stdout.close()


async def test_the_token_state_and_environment(runner: RunningRunner) -> None:
    assert (await runner.call("POST", "/execute", token=None, json={"code": "1"}))[0] == 401
    assert (await runner.call("POST", "/execute", token="wrong-token-but-long", json={"code": "1"}))[0] == 401
    status, health = await runner.call("GET", "/health", token=None)
    assert status == 200 and health == {"status": "ready"}
    await runner.execute("import os\nx = 41")
    answer = await runner.execute("print(x + 1, os.environ['GREETING'])")
    assert answer["console"] == [["stdout", "42 hello\n"]] and answer["exitCode"] == 0
    assert (await runner.call("POST", "/execute", json={"mode": "continue", "runId": "nope"}))[0] == 404
    assert (await runner.call("POST", "/execute", json={"mode": "exec"}))[0] == 400


async def test_continue_interrupt_and_one_run_at_a_time(runner: RunningRunner) -> None:
    spinning = await runner.execute("while True: pass")
    assert spinning["status"] == "continued"
    assert (await runner.call("POST", "/execute", json={"mode": "query", "code": "1"}))[0] == 409
    assert (await runner.call("POST", "/interrupt"))[0] == 204
    result = spinning
    while result["status"] != "finished":
        result = await runner.execute("", "continue", spinning["runId"])
    assert "KeyboardInterrupt" in "".join(item[1] for item in result["console"])


async def test_files_stay_inside_and_uploads_are_bounded(runner: RunningRunner) -> None:
    form = aiohttp.FormData()
    form.add_field("src", b"a,b\n", filename="data/x.csv")
    assert (await runner.call("POST", "/upload", data=form))[0] == 204
    assert (runner.workdir / "data" / "x.csv").read_bytes() == b"a,b\n"
    big = aiohttp.FormData()
    big.add_field("src", b"x" * 5000, filename="big.bin")
    assert (await runner.call("POST", "/upload", data=big))[0] == 413
    assert not (runner.workdir / "big.bin").exists()
    for name in ("../x", "/tmp/x"):
        escape = aiohttp.FormData()
        escape.add_field("src", b"x", filename=name)
        assert (await runner.call("POST", "/upload", data=escape))[0] == 400
    status, listing = await runner.call("GET", "/files", params={"path": "data"})
    assert status == 200 and [f["filename"] for f in json.loads(listing["files"])] == ["x.csv"]
    assert (await runner.call("GET", "/files", params={"path": "/"}))[0] == 400


async def test_output_over_the_limit_is_dropped_with_a_note(runner: RunningRunner) -> None:
    result = await runner.execute("print('y' * 20000)")
    while result["status"] != "finished":
        result = await runner.execute("", "continue", result["runId"])
    out = "".join(item[1] for item in result["console"] if item[0] == "stdout")
    assert len(out) <= 5000 and "dropped" in "".join(item[1] for item in result["console"] if item[0] == "stderr")


async def test_the_terminal(runner: RunningRunner) -> None:
    async with runner.http.ws_connect(runner.url + "/pty", headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        await ws.send_str(json.dumps({"type": "resize", "rows": 30, "cols": 100}))
        await ws.send_str(json.dumps({"type": "stdin", "chars": base64.b64encode(b"echo pty-$((6*7))\n").decode()}))
        seen = ""

        async def echoed() -> bool:
            nonlocal seen
            seen += (await ws.receive(timeout=10)).data
            return "pty-42" in seen

        await wait_until(echoed, timeout=20, what="the shell's answer")


async def test_a_dead_interpreter_answers_then_the_runner_exits_1(runner: RunningRunner) -> None:
    answer = await runner.execute("import os; os._exit(3)")
    assert answer["status"] == "finished" and answer["exitCode"] == 1
    assert "kernel died" in answer["console"][-1][1]
    assert await asyncio.to_thread(runner.process.wait, 20) == 1


async def test_sigterm_stops_it_with_0(runner: RunningRunner) -> None:
    runner.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(runner.process.wait, 20) == 0
    assert "SIGTERM received; exiting" in runner.process.stdout.read()
