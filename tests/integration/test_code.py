"""Code runs in real kernels: the API's code calls against the runner in real containers
on the test bed's real node (docs/runner.md), through a real socket, with its faults."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from kubernel import resource as r
from kubernel_api.keypairs import Keypair
from kubernel_api.keys import SETTINGS
from kubernel_testbed import node
from kubernel_testkit.api_client import ApiClient, signed_headers
from kubernel_testkit.waiting import wait_until

from .conftest import RunningApi, api_settings, start_api

pytestmark = pytest.mark.integration

SMALL = {"cpu": "500m", "mem": "256m"}  # the real node has 2 CPUs: 4 kernels; less CPU starts IPython slowly


async def running(client: ApiClient, token: str, **fields: Any) -> None:
    created = await client.create(token, image="real/python", config={"resources": SMALL}, **fields)
    assert created.status == 201 and created.body["status"] == "RUNNING", created.body


async def execute(
    client: ApiClient,
    token: str,
    code: str = "",
    mode: str = "query",
    run_id: str | None = None,
    **extra: Any,
) -> dict:
    answer = await client.call(
        "POST", f"/kernel/{token}", body={"mode": mode, "code": code, "runId": run_id, **extra}
    )
    assert answer.status == 200, answer.body
    return answer.body["result"]


async def run_to_end(
    client: ApiClient, token: str, code: str, mode: str = "query", **extra: Any
) -> tuple[dict, list]:
    """Execute and continue until finished; the last result and every console item."""
    result = await execute(client, token, code, mode, **extra)
    console = list(result["console"])
    for _ in range(60):
        if result["status"] == "finished":
            return result, console
        result = await execute(client, token, "", "continue", result["runId"])
        console += result["console"]
    raise AssertionError(f"the run did not finish: {result}")


def text(console: list, kind: str) -> str:
    return "".join(item[1] for item in console if item[0] == kind)


async def test_a_query_keeps_the_interpreters_state_and_counts(api: RunningApi) -> None:
    alice = api.client("alice")
    await running(alice, "code-state")
    before = (await alice.call("GET", "/kernel/code-state")).body["numQueriesExecuted"]
    first = await execute(alice, "code-state", "x = 6 * 7")
    assert first["status"] == "finished" and first["runId"] and first["console"] == []
    second = await execute(alice, "code-state", "print(x)\nimport sys; print('oops', file=sys.stderr)")
    assert text(second["console"], "stdout") == "42\n" and text(second["console"], "stderr") == "oops\n"
    failed = await execute(alice, "code-state", "1 / 0")
    assert failed["status"] == "finished" and "ZeroDivisionError" in text(failed["console"], "stderr")
    after = (await alice.call("GET", "/kernel/code-state")).body["numQueriesExecuted"]
    assert after == before + 4  # three executions and this GET: every access counts (docs/api.md)


async def test_a_long_run_continues_and_input_resumes(api: RunningApi) -> None:
    alice = api.client("alice")
    await running(alice, "code-long")
    first = await execute(
        alice, "code-long", "import time\nprint('start', flush=True)\ntime.sleep(5)\nprint('done')"
    )
    assert first["status"] == "continued"
    _, console = await run_to_end(alice, "code-long", "", "continue", runId=first["runId"])
    assert text(first["console"] + console, "stdout") == "start\ndone\n"
    asked = await execute(alice, "code-long", "name = input('who? ')\nprint('hi', name)")
    assert asked["status"] == "waiting-input" and asked["options"].get("is_password") is False
    answered = await execute(alice, "code-long", "bob", "input", asked["runId"])
    _, console = (
        (answered, answered["console"])
        if answered["status"] == "finished"
        else await run_to_end(alice, "code-long", "", "continue", runId=asked["runId"])
    )
    assert "hi bob" in text(console, "stdout")


async def test_interrupt_stops_an_endless_loop(api: RunningApi) -> None:
    alice = api.client("alice")
    await running(alice, "code-intr")
    spinning = await execute(alice, "code-intr", "while True: pass")
    assert spinning["status"] == "continued"
    assert (await alice.call("POST", "/kernel/code-intr/interrupt")).status == 204
    _, console = await run_to_end(alice, "code-intr", "", "continue", runId=spinning["runId"])
    assert "KeyboardInterrupt" in text(console, "stderr")
    assert text((await execute(alice, "code-intr", "print('alive')"))["console"], "stdout") == "alive\n"


async def test_batch_build_and_exec_with_exit_codes(api: RunningApi) -> None:
    alice = api.client("alice")
    await running(alice, "code-batch")
    options = {
        "clean": None,
        "build": "printf 'print(6 * 7)\\nraise SystemExit(3)\\n' > main.py",
        "exec": "python3 main.py",
        "buildLog": True,
    }
    statuses, console, result = [], [], await execute(alice, "code-batch", "", "batch", options=options)
    while True:
        statuses.append(result["status"])
        console += result["console"]
        if result["status"] == "finished":
            break
        result = await execute(alice, "code-batch", "", "continue", result["runId"])
    assert "build-finished" in statuses and statuses[-1] == "finished"
    assert result["exitCode"] == 3 and "42" in text(console, "stdout")


async def test_completion_and_the_container_log(api: RunningApi) -> None:
    alice = api.client("alice")
    await running(alice, "code-misc")
    completed = await alice.call(
        "POST",
        "/kernel/code-misc/complete",
        body={"code": "import o", "options": {"row": 0, "col": 8, "line": "import o", "post": ""}},
    )
    assert completed.status == 200 and "os" in json.dumps(completed.body)
    logs = await alice.call("GET", "/kernel/code-misc/logs")
    assert logs.status == 200 and "kernel ready" in logs.body["result"]["logs"]


def multipart(files: dict[str, bytes]) -> aiohttp.MultipartWriter:
    writer = aiohttp.MultipartWriter("form-data")
    for name, data in files.items():
        part = writer.append(data, {"Content-Type": "application/octet-stream"})
        part.set_content_disposition("form-data", name="src", filename=name)
    return writer


async def upload(client: ApiClient, token: str, files: dict[str, bytes]) -> int:
    writer = multipart(files)
    path = f"/kernel/{token}/upload"
    # Signed with the media type alone, as the client does (the boundary is not part of it).
    headers = {
        **client.signed_headers("POST", path, "multipart/form-data"),
        "Content-Type": writer.content_type,
    }
    async with client.http.post(client.base_url + path, data=writer, headers=headers) as resp:
        return resp.status


async def test_files_round_trip_inside_the_working_directory_only(api: RunningApi) -> None:
    alice = api.client("alice")
    await running(alice, "code-files")
    assert await upload(alice, "code-files", {"data/hello.txt": b"hello\n"}) == 204
    listed = await alice.call("GET", "/kernel/code-files/files", body={"path": "data"})
    assert listed.status == 200
    assert [f["filename"] for f in json.loads(listed.body["files"])] == ["hello.txt"]
    read = await execute(alice, "code-files", "print(open('data/hello.txt').read(), end='')")
    assert text(read["console"], "stdout") == "hello\n"
    path = "/kernel/code-files/download"
    body = json.dumps({"files": ["data/hello.txt"]}).encode()
    headers = {**alice.signed_headers("GET", path, "application/json"), "Content-Type": "application/json"}
    async with alice.http.get(alice.base_url + path, data=body, headers=headers) as resp:
        assert resp.status == 200
        reader = aiohttp.MultipartReader.from_response(resp)
        part = await reader.next()
        archive = tarfile.open(fileobj=io.BytesIO(await part.read()))
        assert archive.extractfile(archive.getmembers()[0]).read() == b"hello\n"
    # Leaving the working directory, every way: refused, and nothing written outside.
    await execute(alice, "code-files", "import os; os.symlink('/etc', 'etc-link')")
    for escape in ("../../etc", "/etc", "etc-link", "/home/work/../../etc"):
        answer = await alice.call("GET", "/kernel/code-files/files", body={"path": escape})
        assert answer.status == 400, (escape, answer.body)
    for escape in ("../escaped.txt", "/tmp/escaped.txt", "etc-link/escaped.txt"):
        assert await upload(alice, "code-files", {escape: b"x"}) == 400, escape
    answer = await alice.call("GET", path, body={"files": ["../../etc/passwd"]})
    assert answer.status == 400
    check = await execute(alice, "code-files", "import os; print(os.path.exists('/tmp/escaped.txt'))")
    assert text(check["console"], "stdout") == "False\n"


async def test_an_upload_over_the_limit_is_413(api: RunningApi, kube: Any, namespace: str) -> None:
    await running(api.client("alice"), "code-big")
    small, base_url = await start_api(kube, api_settings(namespace, upload_bytes=1000))
    try:
        alice = ApiClient(base_url, api.keypairs["alice"], api.http)
        assert await upload(alice, "code-big", {"big.bin": b"x" * 5000}) == 413
        assert await upload(alice, "code-big", {"small.bin": b"x" * 10}) == 204
    finally:
        await small.cleanup()


async def test_output_is_capped_with_a_note(api: RunningApi) -> None:
    alice = api.client("alice")
    await running(alice, "code-flood")
    _, console = await run_to_end(alice, "code-flood", "print('x' * (8 << 20))")
    out = text(console, "stdout")
    assert 0 < len(out) <= 1 << 20
    assert "dropped" in text(console, "stderr")


async def test_restart_resets_the_interpreter(api: RunningApi) -> None:
    alice = api.client("alice")
    await running(alice, "code-restart")
    await execute(alice, "code-restart", "x = 1")
    assert (await alice.call("PATCH", "/kernel/code-restart")).status == 204

    async def back() -> bool:
        return (await alice.call("GET", "/kernel/code-restart")).body["status"] == "RUNNING"

    await wait_until(back, timeout=60, what="the restarted kernel running")
    again = await execute(alice, "code-restart", "print(x)")
    assert "NameError" in text(again["console"], "stderr")


async def test_a_killed_interpreter_ends_the_run_and_the_session_says_why(api: RunningApi) -> None:
    alice = api.client("alice")
    await running(alice, "code-exit")
    died = await execute(alice, "code-exit", "import os; os._exit(1)")
    assert died["status"] == "finished" and died["exitCode"] == 1 and text(died["console"], "stderr")

    async def ended() -> dict | None:
        info = (await alice.call("GET", "/kernel/code-exit")).body
        return info if info["status"] == "TERMINATED" else None

    info = await wait_until(ended, timeout=60, what="the session to end")
    assert info["statusInfo"] == "self-terminated"
    assert (await api.client("alice").call("GET", "/")).status == 200  # the API keeps serving


async def test_memory_exhaustion_ends_the_run_with_an_error(api: RunningApi) -> None:
    alice = api.client("alice")
    created = await alice.create(
        "code-oom", image="real/python", config={"resources": {"cpu": "500m", "mem": "128m"}}
    )
    assert created.body["status"] == "RUNNING"
    result, console = await run_to_end(alice, "code-oom", "b = []\nwhile True: b.append(bytearray(8 << 20))")
    assert result["exitCode"] == 1 and text(console, "stderr")

    async def ended() -> dict | None:
        info = (await alice.call("GET", "/kernel/code-oom")).body
        return info if info["status"] == "TERMINATED" else None

    info = await wait_until(ended, timeout=60, what="the session to end")
    assert info["statusInfo"] in ("oom-killed", "self-terminated")


async def test_who_may_execute_and_where(api: RunningApi) -> None:
    alice, bob = api.client("alice"), api.client("bob")
    await running(alice, "code-owner")
    assert (await bob.call("POST", "/kernel/code-owner", body={"mode": "query", "code": "1"})).status == 404
    named = await bob.call(
        "POST",
        "/kernel/code-owner",
        body={"mode": "query", "code": "1"},
        params={"owner_access_key": api.keypairs["alice"].access_key},
    )
    assert named.status == 403
    # A session on a simulated node has no runner: a clear 409, at once.
    assert (await alice.create("code-sim")).body["status"] == "RUNNING"
    for method, path in (
        ("POST", "/kernel/code-sim"),
        ("POST", "/kernel/code-sim/interrupt"),
        ("GET", "/kernel/code-sim/files"),
    ):
        answer = await alice.call(
            method,
            path,
            body={"mode": "query", "code": "1"} if method == "POST" and path == "/kernel/code-sim" else None,
        )
        assert answer.status == 409 and answer.body["type"].endswith("/kernel-cannot-execute"), answer.body
    bad = await alice.call("POST", "/kernel/code-owner", body={"mode": "exec", "code": "1"})
    assert bad.status == 400


async def test_the_runner_port_refuses_requests_without_the_sessions_token(api: RunningApi) -> None:
    alice = api.client("alice")
    await running(alice, "code-token")
    name = r.session_name(api.keypairs["alice"].access_key, "code-token")
    body = api.sessions.get((api.app[SETTINGS].namespace, name))
    address = body["status"]["kernelAddress"]
    url = f"http://{address}/execute"
    payload = {"mode": "query", "code": "print(1)"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=payload) as resp:
            assert resp.status == 401
        async with http.post(url, json=payload, headers={"Authorization": "Bearer not-the-token"}) as resp:
            assert resp.status == 401
        async with http.get(f"http://{address}/health") as resp:
            assert resp.status == 200 and set(await resp.json()) == {"status"}
    # The runner and the user's code share one non-root user, so the code can read its own
    # session's token: it opens only this session's runner, which the code already commands.
    read = await execute(alice, "code-token", "print(open('/var/run/kubernel/identity/token').read())")
    own_token = text(read["console"], "stdout").strip()
    auth = {"Authorization": f"Bearer {own_token}"}
    await running(alice, "code-token-2")
    other = api.sessions.get(
        (api.app[SETTINGS].namespace, r.session_name(api.keypairs["alice"].access_key, "code-token-2"))
    )
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=payload, headers=auth) as resp:
            assert resp.status == 200  # it is the real token
        other_url = f"http://{other['status']['kernelAddress']}/execute"
        async with http.post(other_url, json=payload, headers=auth) as resp:
            assert resp.status == 401  # and another session's runner refuses it


SANDBOX_PROBE = r"""
import ctypes, json, os, socket, subprocess
def status(field):
    return next(l.split(":", 1)[1].strip() for l in open("/proc/self/status") if l.startswith(field + ":"))
def refused(action):
    try:
        action()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return False
def write(path):
    with open(os.path.join(path, ".kubernel-probe"), "w") as f:
        f.write("x")
def raw_socket():
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
def mount():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"none", b"/home/work", b"tmpfs", 0, None) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
mount_command = subprocess.run(["mount", "-t", "tmpfs", "none", "/tmp"], capture_output=True, text=True)
def ptrace_runner():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, 1, None, None) != 0:  # PTRACE_ATTACH to the runner (the container's PID 1)
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    libc.ptrace(17, 1, None, None)
print(json.dumps({
    "runnerEnviron": refused(lambda: open("/proc/1/environ", "rb").read()),
    "runnerMemory": refused(lambda: open("/proc/1/mem", "rb").close()),
    "runnerPtrace": refused(ptrace_runner),
    "ids": [os.getuid(), os.geteuid(), os.getgid()],
    "capEff": status("CapEff"), "capBnd": status("CapBnd"),
    "noNewPrivs": status("NoNewPrivs"), "seccomp": status("Seccomp"),
    "setuid": refused(lambda: os.setuid(0)),
    "rawSocket": refused(raw_socket),
    "mount": refused(mount), "mountCommand": mount_command.returncode,
    "written": {p: not refused(lambda: write(p)) for p in ["/home/work", "/tmp", "/", "/etc", "/usr/bin", "/var", "/root", "/opt"]},
}))
"""


async def test_a_kernel_is_confined_to_the_restricted_profile(api: RunningApi) -> None:
    """From inside a real kernel: no root, no capabilities, no privilege escalation, a seccomp
    filter, no raw sockets, no mount, and writes only to the working directory and /tmp. The
    test namespace enforces ``restricted`` too, so the Pod got past the API server's check."""
    alice = api.client("alice")
    await running(alice, "code-sandbox")
    probe = await execute(alice, "code-sandbox", SANDBOX_PROBE)
    assert text(probe["console"], "stderr") == "", probe["console"]
    found = json.loads(text(probe["console"], "stdout"))
    assert found["ids"] == [1000, 1000, 1000]
    assert int(found["capEff"], 16) == 0 and int(found["capBnd"], 16) == 0
    assert found["noNewPrivs"] == "1" and found["seccomp"] == "2"  # 2: a seccomp filter
    assert found["setuid"] and found["rawSocket"] and found["mount"]
    # The runner (same user) is not dumpable: its token is out of the code's reach.
    assert found["runnerEnviron"] and found["runnerMemory"] and found["runnerPtrace"], found
    assert found["mountCommand"] != 0
    assert found["written"] == {
        "/home/work": True,
        "/tmp": True,
        **dict.fromkeys(["/", "/etc", "/usr/bin", "/var", "/root", "/opt"], False),
    }


async def ws_connect(
    http: aiohttp.ClientSession, base_url: str, keypair: Keypair, path: str
) -> aiohttp.ClientWebSocketResponse:
    host = base_url.split("://", 1)[1]
    return await http.ws_connect(
        base_url + path, headers=signed_headers(keypair, "GET", path, host, "application/octet-stream")
    )


async def test_the_execute_websocket_and_the_terminal(api: RunningApi) -> None:
    alice = api.client("alice")
    await running(alice, "code-ws")
    keypair = api.keypairs["alice"]
    ws = await ws_connect(api.http, api.base_url, keypair, "/stream/kernel/code-ws/execute")
    await ws.send_json({"code": "n = input()\nprint(int(n) * 2)", "mode": "query", "options": {}})
    seen: list[dict] = []
    async for message in ws:
        result = json.loads(message.data)
        seen.append(result)
        if result["status"] == "waiting-input":
            await ws.send_str("21")
        if result["status"] == "finished":
            break
    await ws.close()
    assert "42" in "".join(text(r["console"], "stdout") for r in seen)
    pty = await ws_connect(api.http, api.base_url, keypair, "/stream/kernel/code-ws/pty")
    await pty.send_str(json.dumps({"type": "stdin", "chars": _stdin("echo pty-$((6*7))\n")}))
    output = b""

    async def echoed() -> bool:  # 19.09's frames: {"type": "out", "data": <base64>} (docs/runner.md)
        nonlocal output
        frame = json.loads((await pty.receive(timeout=10)).data)
        assert frame["type"] == "out", frame
        output += base64.b64decode(frame["data"])
        return b"pty-42" in output

    await wait_until(echoed, timeout=20, what="the terminal's answer")
    await pty.close()


def _stdin(chars: str) -> str:
    return base64.b64encode(chars.encode()).decode()


async def test_an_images_runtime_class_reaches_the_node(api: RunningApi, kube: Any) -> None:
    """The image table's runtimeClassName, end to end: the RuntimeClass, its handler in the
    node's containerd, a session of that image that runs code, still confined. (An unknown
    handler fails the session: test_real_node.py.)"""
    runtime_classes = client.NodeV1Api(kube)
    await runtime_classes.create_runtime_class(
        {"metadata": {"name": node.SECOND_HANDLER}, "handler": node.SECOND_HANDLER}
    )
    try:
        alice = api.client("alice")
        created = await alice.create("code-runtime", image="real/runtime-class", config={"resources": SMALL})
        assert created.status == 201 and created.body["status"] == "RUNNING", created.body
        name = r.session_name(api.keypairs["alice"].access_key, "code-runtime")
        [pod] = (
            await client.CoreV1Api(kube).list_namespaced_pod(
                api.app[SETTINGS].namespace, label_selector=f"{r.LABEL_SESSION}={name}"
            )
        ).items
        assert pod.spec.runtime_class_name == node.SECOND_HANDLER
        probe = await execute(alice, "code-runtime", SANDBOX_PROBE)
        found = json.loads(text(probe["console"], "stdout"))
        assert found["ids"] == [1000, 1000, 1000] and found["setuid"] and found["written"]["/etc"] is False
    finally:
        await runtime_classes.delete_runtime_class(node.SECOND_HANDLER)
