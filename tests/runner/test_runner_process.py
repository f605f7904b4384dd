"""The code runner as a process: ``python -m kubernel_runner`` on a free port with a
temporary identity directory and working directory, driven through a real socket
(docs/runner.md). No cluster. One runner serves most tests (state carries over, as in
a session) and ends with SIGTERM; another one is killed by its own code."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import secrets
import signal
import sys
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kubernel_testbed.polling import free_port
from kubernel_testkit.waiting import wait_until

pytestmark = pytest.mark.timeout(120)
START_TIMEOUT = 60.0


@dataclass
class RunnerProcess:
    process: asyncio.subprocess.Process
    base_url: str
    token: str
    identity_dir: Path
    workdir: Path
    log: Path
    http: aiohttp.ClientSession

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> tuple[int, Any]:
        headers = {**(self.auth if auth else {}), **kwargs.pop("headers", {})}
        async with self.http.request(method, self.base_url + path, headers=headers, **kwargs) as resp:
            body = await resp.read()
            if resp.content_type.endswith("json"):
                return resp.status, json.loads(body)
            return resp.status, body

    async def execute(
        self, code: str = "", mode: str = "query", run_id: str | None = None, options: dict | None = None
    ) -> dict:
        status, body = await self.call(
            "POST", "/execute", json={"mode": mode, "code": code, "runId": run_id, "options": options}
        )
        assert status == 200, body
        return body

    async def to_end(self, first: dict) -> tuple[dict, list]:
        """Continue a run until it finishes: its last answer and all its console items."""
        result, console = first, list(first["console"])
        while result["status"] != "finished":
            assert result["status"] in ("continued", "build-finished", "clean-finished"), result
            result = await self.execute("", "continue", result["runId"])
            console += result["console"]
        return result, console

    async def run(self, code: str) -> tuple[dict, list]:
        return await self.to_end(await self.execute(code))


def text(console: list, kind: str) -> str:
    return "".join(item[1] for item in console if item[0] == kind)


async def start_runner(
    tmp: Path,
    http: aiohttp.ClientSession,
    *,
    bound: bool = True,
    argv: tuple[str, ...] = (sys.executable, "-m", "kubernel_runner"),
    cwd: Path | None = None,
    **env: str,
) -> RunnerProcess:
    identity, workdir = tmp / "identity", tmp / "work"
    identity.mkdir()
    workdir.mkdir()
    port = free_port()
    log = tmp / "runner.log"
    environ = {
        **os.environ,
        "KUBERNEL_RUNNER_PORT": str(port),
        "KUBERNEL_RUNNER_IDENTITY": str(identity),
        "KUBERNEL_RUNNER_WORKDIR": str(workdir),
        "KUBERNEL_RUNNER_CONTINUE_SECONDS": "1",
        **env,
    }
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, env=environ, cwd=cwd, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    runner = RunnerProcess(
        process, f"http://127.0.0.1:{port}", secrets.token_hex(24), identity, workdir, log, http
    )
    if bound:
        bind(runner)
        await wait_ready(runner)
    return runner


def bind(runner: RunnerProcess, environ: dict[str, str] | None = None) -> None:
    document = {"sessionId": "s-1", "ownerAccessKey": "AKTEST", "environ": environ or {}}
    (runner.identity_dir / "identity.json").write_text(json.dumps(document))
    (runner.identity_dir / "token").write_text(runner.token)


async def health(runner: RunnerProcess, wait: float = 0) -> tuple[int, Any]:
    try:
        return await runner.call("GET", f"/health?wait={wait}", auth=False)
    except aiohttp.ClientConnectionError:
        return 0, None


async def wait_ready(runner: RunnerProcess) -> None:
    async def ready() -> bool:
        assert runner.process.returncode is None, runner.log.read_text()
        return (await health(runner, wait=5))[0] == 200  # answers the moment the kernel is ready

    await wait_until(ready, timeout=START_TIMEOUT, what="the runner ready", interval=0.1)


async def stop(runner: RunnerProcess) -> None:
    if runner.process.returncode is None:
        runner.process.kill()
        await runner.process.wait()


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="module")
async def unbound(
    tmp_path_factory: pytest.TempPathFactory, http: aiohttp.ClientSession
) -> AsyncIterator[RunnerProcess]:
    """Started unbound; bound by the first test."""
    started = await start_runner(
        tmp_path_factory.mktemp("runner"),
        http,
        bound=False,
        KUBERNEL_RUNNER_UPLOAD_LIMIT="4096",
        KUBERNEL_RUNNER_OUTPUT_LIMIT="65536",
        KUBERNEL_RUNNER_REAP_SECONDS="0.1",
    )
    yield started
    await stop(started)


ENVIRON = {"GREETING": "hello"}


@pytest.fixture
async def runner(unbound: RunnerProcess) -> RunnerProcess:
    """The shared runner, bound (by the first test, or here when that one did not run)."""
    if not (unbound.identity_dir / "token").exists():
        bind(unbound, ENVIRON)
    await wait_ready(unbound)
    return unbound


async def test_unbound_until_the_identity_arrives_then_ready_and_guarded(unbound: RunnerProcess) -> None:
    runner = unbound

    async def answering() -> tuple[int, Any] | None:
        answer = await health(runner)
        return answer if answer[0] else None  # 0: not listening yet

    status, body = await wait_until(answering, timeout=START_TIMEOUT, what="the runner's port")
    assert (status, body) == (503, {"status": "unbound"})
    status, body = await runner.call("POST", "/execute", json={"mode": "query", "code": "1"})
    assert status == 503 and body["status"] == 503
    bind(runner, ENVIRON)
    await wait_ready(runner)
    assert await health(runner) == (200, {"status": "ready"})
    assert "kernel ready: pid " in runner.log.read_text()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": runner.token}):
        status, body = await runner.call(
            "POST", "/execute", auth=False, headers=headers, json={"mode": "query", "code": "1"}
        )
        assert status == 401 and body["status"] == 401 and set(body) == {"type", "title", "status", "detail"}
    status, _ = await runner.call("GET", "/files", auth=False)
    assert status == 401


async def test_a_query_keeps_state_and_its_output(runner: RunnerProcess) -> None:
    first = await runner.execute("x = 1")
    assert first["status"] == "finished" and first["console"] == [] and first["exitCode"] == 0
    assert first["options"] is None and first["files"] == [] and first["runId"]
    _, console = await runner.run(
        "import os, sys\nprint(x, os.environ['GREETING'])\nprint('oops', file=sys.stderr)\n"
        "print(sorted(k for k in os.environ if k.startswith('KUBERNEL_RUNNER')))"
    )
    assert text(console, "stdout") == "1 hello\n[]\n" and text(console, "stderr") == "oops\n"
    result, console = await runner.run("6 * 7")
    assert console == [["stdout", "42"]]
    result, console = await runner.run("print('before')\n1 / 0")
    assert result["exitCode"] == 0  # 19.09: a query's exit code is 0 even when the code raised
    assert console[0] == ["stdout", "before\n"]
    assert "ZeroDivisionError" in text(console, "stderr") and "\x1b[" not in text(console, "stderr")
    _, console = await runner.run("from IPython.display import HTML, display\ndisplay(HTML('<b>hi</b>'))")
    assert console == [["html", "<b>hi</b>"]]
    mine = await runner.execute("y = 2", run_id="my-run.1")
    assert mine["runId"] == "my-run.1"


async def test_a_long_run_continues_and_a_second_one_is_refused_meanwhile(runner: RunnerProcess) -> None:
    first = await runner.execute("import time\nprint('start', flush=True)\ntime.sleep(5)\nprint('done')")
    assert first["status"] == "continued" and first["exitCode"] is None
    status, body = await runner.call("POST", "/execute", json={"mode": "query", "code": "1"})
    assert status == 409 and "still going" in body["detail"]
    result, console = await runner.to_end(first)
    assert text(console, "stdout") == "start\ndone\n" and result["runId"] == first["runId"]
    status, body = await runner.call("POST", "/execute", json={"mode": "continue", "runId": first["runId"]})
    assert status == 404 and body["status"] == 404


async def test_input_waits_and_resumes(runner: RunnerProcess) -> None:
    asked = await runner.execute("name = input('who? ')\nprint('hi', name)")
    assert asked["status"] == "waiting-input" and asked["options"] == {"is_password": False}
    assert asked["console"] == [["stdout", "who? "]]
    status, _ = await runner.call("POST", "/execute", json={"mode": "continue", "runId": "nope"})
    assert status == 404
    _, console = await runner.to_end(await runner.execute("bob", "input", asked["runId"]))
    assert "hi bob" in text(console, "stdout")
    secret = await runner.execute("import getpass\nprint(len(getpass.getpass('pw: ')))")
    assert secret["status"] == "waiting-input" and secret["options"] == {"is_password": True}
    # A new query abandons a run that waits for input (interrupted, forgotten).
    _, console = await runner.run("print('next')")
    assert text(console, "stdout") == "next\n"
    status, _ = await runner.call(
        "POST", "/execute", json={"mode": "input", "code": "x", "runId": secret["runId"]}
    )
    assert status == 404


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        b'{"mode": "exec"}',
        b'{"mode": "continue"}',
        b'{"mode": "query", "code": 5}',
        b'{"mode": "query", "runId": "../x"}',
        b'{"mode": "batch", "options": {"exec": 3}}',
    ],
)
async def test_bad_execute_bodies_are_400_problems(runner: RunnerProcess, body: bytes) -> None:
    status, answer = await runner.call(
        "POST", "/execute", data=body, headers={"Content-Type": "application/json"}
    )
    assert status == 400 and answer["status"] == 400 and "Traceback" not in answer["detail"]


async def test_interrupt_stops_an_endless_loop(runner: RunnerProcess) -> None:
    spinning = await runner.execute("while True: pass")
    assert spinning["status"] == "continued"
    status, _ = await runner.call("POST", "/interrupt")
    assert status == 204
    result, console = await runner.to_end(spinning)
    assert "KeyboardInterrupt" in text(console, "stderr") and result["status"] == "finished"


async def test_completion(runner: RunnerProcess) -> None:
    status, body = await runner.call(
        "POST",
        "/complete",
        json={"code": "import o", "options": {"row": 0, "col": 8, "line": "import o", "post": ""}},
    )
    assert status == 200 and body["result"]["status"] == "finished" and "os" in body["result"]["completions"]


async def batch(runner: RunnerProcess, **options: Any) -> tuple[list[tuple[str, int | None]], list]:
    result = await runner.execute(
        "", "batch", options={"clean": None, "build": None, "exec": None, **options}
    )
    answers, console = [(result["status"], result["exitCode"])], list(result["console"])
    while result["status"] != "finished":
        result = await runner.execute("", "continue", result["runId"])
        answers.append((result["status"], result["exitCode"]))
        console += result["console"]
    return [a for a in answers if a[0] != "continued"], console


async def test_batch_steps_and_their_exit_codes(runner: RunnerProcess) -> None:
    answers, console = await batch(
        runner,
        clean="echo cleaning; exit 4",
        build="printf 'print(6 * 7)\\nraise SystemExit(3)\\n' > main.py; echo built",
        exec="python3 main.py",
    )
    assert answers == [("clean-finished", 4), ("build-finished", 0), ("finished", 3)]
    assert text(console, "stdout") == "cleaning\nbuilt\n42\n"
    answers, console = await batch(runner, build="echo broken >&2; false", exec="echo never")
    assert answers == [("build-finished", 1), ("finished", 127)] and text(console, "stdout") == ""
    assert "broken" in text(console, "stderr")
    answers, console = await batch(runner, exec="*")  # the default: main.py, built above
    assert answers == [("finished", 3)] and text(console, "stdout") == "42\n"
    answers, _ = await batch(runner, build="true")
    assert answers == [("build-finished", 0), ("finished", 0)]


def multipart(files: dict[str, bytes]) -> aiohttp.MultipartWriter:
    writer = aiohttp.MultipartWriter("form-data")
    for name, data in files.items():
        part = writer.append(data, {"Content-Type": "application/octet-stream"})
        part.set_content_disposition("form-data", name="src", filename=name)
    return writer


async def test_files_upload_list_download(runner: RunnerProcess) -> None:
    status, _ = await runner.call(
        "POST", "/upload", data=multipart({"data/hello.txt": b"hello\n", "top.txt": b"t"})
    )
    assert status == 204
    assert (runner.workdir / "data" / "hello.txt").read_bytes() == b"hello\n"
    status, listed = await runner.call("GET", "/files", params={"path": "data"})
    assert (
        status == 200
        and listed["errors"] == ""
        and listed["abspath"] == str((runner.workdir / "data").resolve())
    )
    entries = json.loads(listed["files"])
    assert [(e["filename"], e["size"]) for e in entries] == [("hello.txt", 6)] and entries[0][
        "mode"
    ] == "-rw-r--r--"
    status, top = await runner.call("GET", "/files", params={"path": str(runner.workdir)})
    assert status == 200 and {"data", "top.txt"} <= {e["filename"] for e in json.loads(top["files"])}
    _, console = await runner.run("print(open('data/hello.txt').read(), end='')")
    assert text(console, "stdout") == "hello\n"
    async with runner.http.get(
        runner.base_url + "/download",
        headers=runner.auth,
        params=[("file", "data/hello.txt"), ("file", "data")],
    ) as resp:
        assert resp.status == 200 and resp.content_type == "multipart/mixed"
        reader = aiohttp.MultipartReader.from_response(resp)
        archives = []
        while (part := await reader.next()) is not None:
            archives.append(tarfile.open(fileobj=io.BytesIO(await part.read())))
    assert [a.getnames() for a in archives] == [["hello.txt"], ["data", "data/hello.txt"]]
    assert archives[0].extractfile("hello.txt").read() == b"hello\n"
    status, _ = await runner.call("GET", "/download", params={"file": "missing.txt"})
    assert status == 404


async def test_paths_outside_the_working_directory_are_refused(runner: RunnerProcess) -> None:
    os.symlink("/", runner.workdir / "root-link")
    os.symlink("/etc/passwd", runner.workdir / "passwd-link")
    for escape in (
        "..",
        "../..",
        "/etc",
        "/etc/passwd",
        "root-link",
        "root-link/etc",
        "passwd-link",
        f"{runner.workdir}/../..",
        "a\x00b",
    ):
        status, body = await runner.call("GET", "/files", params={"path": escape})
        assert status == 400 and body["status"] == 400, (escape, body)
        status, body = await runner.call("GET", "/download", params={"file": escape})
        assert status == 400, (escape, body)
    for escape in (
        "../escaped.txt",
        "/tmp/escaped-kubernel.txt",
        "root-link/tmp/escaped-kubernel.txt",
        "passwd-link",
    ):
        status, body = await runner.call("POST", "/upload", data=multipart({escape: b"x"}))
        assert status == 400, (escape, body)
    assert (
        not Path("/tmp/escaped-kubernel.txt").exists()
        and not (runner.workdir.parent / "escaped.txt").exists()
    )
    # A listing shows a link as a link; a download leaves it out.
    status, listed = await runner.call("GET", "/files", params={"path": "."})
    modes = {e["filename"]: e["mode"] for e in json.loads(listed["files"])}
    assert modes["root-link"].startswith("l")
    async with runner.http.get(
        runner.base_url + "/download", headers=runner.auth, params={"file": "."}
    ) as resp:
        part = await aiohttp.MultipartReader.from_response(resp).next()
        names = tarfile.open(fileobj=io.BytesIO(await part.read())).getnames()
    assert names and not any("link" in name for name in names)


async def test_an_upload_over_the_limit_is_413_and_leaves_nothing(runner: RunnerProcess) -> None:
    status, body = await runner.call("POST", "/upload", data=multipart({"big.bin": b"x" * 10000}))
    assert status == 413 and body["status"] == 413
    assert not (runner.workdir / "big.bin").exists()


async def test_output_over_the_limit_is_dropped_with_a_note(runner: RunnerProcess) -> None:
    result, console = await runner.run("print('x' * 200000)\nprint('y' * 1000)")
    out = text(console, "stdout")
    assert 60000 < len(out) <= 65536 and set(out) == {"x"}
    notes = [item for item in console if item[0] == "stderr"]
    assert len(notes) == 1 and "dropped" in notes[0][1] and result["status"] == "finished"


async def test_stats(runner: RunnerProcess) -> None:
    status, body = await runner.call("GET", "/stats")
    assert status == 200
    assert set(body) == {
        "cpu_used",
        "mem_cur_bytes",
        "mem_max_bytes",
        "io_read_bytes",
        "io_write_bytes",
        "cpu_limit_millis",  # the limits it runs under (0: none), which a warm claim's resize waits for
        "mem_limit_bytes",
    }
    assert all(isinstance(v, int) and v >= 0 for v in body.values())


async def test_the_terminal_echoes_a_command(runner: RunnerProcess) -> None:
    async with runner.http.ws_connect(runner.base_url + "/pty", headers=runner.auth) as ws:
        await ws.send_str(json.dumps({"type": "resize", "rows": 30, "cols": 100}))
        await ws.send_str(
            json.dumps({"type": "stdin", "chars": base64.b64encode(b"echo pty-$((6*7))\n").decode()})
        )
        output = b""

        async def echoed() -> bool:
            nonlocal output
            frame = json.loads((await ws.receive(timeout=10)).data)
            assert frame["type"] == "out", frame
            output += base64.b64decode(frame["data"])
            return b"pty-42" in output

        await wait_until(echoed, timeout=20, what="the terminal's answer")
        await ws.send_str("not json")
        frame = json.loads((await ws.receive(timeout=10)).data)
        while frame["type"] == "out":
            frame = json.loads((await ws.receive(timeout=10)).data)
        assert frame["type"] == "error"


async def test_orphans_of_the_users_code_are_adopted_and_reaped(runner: RunnerProcess) -> None:
    _, console = await runner.run(
        "import subprocess\nprint(subprocess.run(['sh', '-c', 'sleep 10 >/dev/null & "
        "echo $!'], capture_output=True, text=True).stdout.strip())"
    )
    orphan = int(text(console, "stdout"))

    def stat() -> list[str] | None:
        try:
            return Path(f"/proc/{orphan}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):  # reaped before, or between open and read
            return None

    assert int(stat()[1]) == runner.process.pid  # its shell ended: the runner (a subreaper) adopted it

    async def gone() -> bool:
        return stat() is None  # ended, and not left a zombie

    await wait_until(gone, timeout=30, what=f"the orphan {orphan} reaped (now {stat()})")


async def test_sigterm_ends_the_runner_with_status_0(runner: RunnerProcess) -> None:
    runner.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(runner.process.wait(), 10) == 0
    assert "SIGTERM received" in runner.log.read_text()


async def test_a_dying_kernel_answers_then_the_runner_exits_1(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    dying = await start_runner(tmp_path, http)
    try:
        result, console = await dying.run("print('bye', flush=True)\nimport os; os._exit(1)")
        assert result["status"] == "finished" and result["exitCode"] == 1
        assert "the kernel died" in text(console, "stderr")
        assert await asyncio.wait_for(dying.process.wait(), 15) == 1
    finally:
        await stop(dying)


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of a process's children."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(
                    (int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
                )
        except (OSError, IndexError, ValueError):
            continue
    return found


async def test_a_kernel_that_dies_between_executions_ends_the_runner(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    dying = await start_runner(tmp_path, http)
    try:
        [(kernel, _)] = [c for c in children(dying.process.pid) if "ipykernel" in c[1]]
        os.kill(kernel, signal.SIGKILL)  # as the OOM killer would
        assert await asyncio.wait_for(dying.process.wait(), 15) == 1
        assert "the kernel exited" in dying.log.read_text()
    finally:
        await stop(dying)


BIND_TOKEN = "b" * 40


async def test_a_warm_runner_answers_only_its_one_bind_then_runs_with_the_sessions_environ(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A warm pool's kernel (KUBERNEL_RUNNER_BIND_TOKEN): the interpreter is up before any
    session, the Pod Ready; no call but the operator's bind is served; the bind is one-time,
    and its environ and working directory are the interpreter's before the first execution."""
    runner = await start_runner(tmp_path, http, bound=False, KUBERNEL_RUNNER_BIND_TOKEN=BIND_TOKEN)
    try:
        await wait_ready(runner)
        assert await health(runner) == (200, {"status": "warm"})
        assert "kernel warm: pid " in runner.log.read_text()
        status, body = await runner.call("POST", "/execute", json={"mode": "query", "code": "1"})
        assert status == 503, body  # no session, so no code
        status, _ = await runner.call(
            "POST",
            "/execute",
            auth=False,
            headers={"Authorization": f"Bearer {BIND_TOKEN}"},
            json={"mode": "query"},
        )
        assert status == 503  # the bind token opens nothing but /bind
        document = {
            "token": runner.token,
            "sessionId": "s-9",
            "ownerAccessKey": "AK",
            "environ": {"WARM": "yes"},
        }
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {runner.token}"}):
            status, _ = await runner.call("POST", "/bind", auth=False, headers=headers, json=document)
            assert status == 401
        bind_headers = {"Authorization": f"Bearer {BIND_TOKEN}"}
        status, body = await runner.call(
            "POST", "/bind", auth=False, headers=bind_headers, json={"token": "short"}
        )
        assert status == 400, body
        status, body = await runner.call("POST", "/bind", auth=False, headers=bind_headers, json=document)
        assert (status, body) == (200, {"status": "ready"})
        assert await health(runner) == (200, {"status": "ready"})
        _, console = await runner.run(
            "import os\nprint(os.environ['WARM'], os.getcwd(), 'KUBERNEL_RUNNER_BIND_TOKEN' in os.environ)"
        )
        assert text(console, "stdout") == f"yes {runner.workdir} False\n"
        _, console = await runner.run("print(sorted(k for k in dir() if not k.startswith('_')))")
        assert "'os'" in text(console, "stdout") and "json" not in text(
            console, "stdout"
        )  # the bind left no name
        again = {**document, "token": "c" * 40}
        status, body = await runner.call("POST", "/bind", auth=False, headers=bind_headers, json=again)
        assert status == 409, body  # one session, ever
        status, _ = await runner.call(
            "POST",
            "/execute",
            auth=False,
            headers={"Authorization": "Bearer " + "c" * 40},
            json={"mode": "query", "code": "1"},
        )
        assert status == 401
    finally:
        await stop(runner)


PLANTED = """
import importlib, os, sys
with open({marker!r}, "a") as out:
    out.write(f"{{os.getpid()}}\\n")
here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
del sys.modules[__name__]
sys.modules[__name__] = importlib.import_module(__name__)  # the real one, for whoever imported it
"""


async def test_the_runner_starts_isolated_from_modules_planted_for_it(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Started as the image starts it (python -I, its own path), the runner imports nothing
    from its working directory or a PYTHONPATH the session sets; the user's interpreter may."""
    from kubernel_testbed.imagebuild import PYTHON

    planted, marker = tmp_path / "planted", tmp_path / "imported-by"
    planted.mkdir()
    for module in ("socket", "json", "asyncio"):
        (planted / f"{module}.py").write_text(PLANTED.format(marker=str(marker)))
    runner = await start_runner(
        tmp_path, http, argv=(sys.executable, *PYTHON.cmd[1:]), cwd=planted, PYTHONPATH=str(planted)
    )
    try:
        _, console = await runner.run("import os; print(os.getpid())")
        kernel_pid = int(text(console, "stdout"))
        importers = {int(line) for line in marker.read_text().split()} if marker.exists() else set()
        assert runner.process.pid not in importers, "the runner imported a planted module"
        assert kernel_pid in importers  # the user's own interpreter honours PYTHONPATH: a test that can fail
    finally:
        await stop(runner)
