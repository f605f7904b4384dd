"""The published Backend.AI Python client (19.09 series, API v4.20190615) against the service."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from .conftest import RunningApi
from .test_api_stream import is_startup

REPO = Path(__file__).resolve().parents[2]
CLIENT_PYTHON = REPO / ".venv-bai19" / "bin" / "python"
SCENARIO = REPO / "tests" / "client" / "bai19_scenario.py"


async def test_backendai_client_19_09_full_session(api: RunningApi) -> None:
    assert CLIENT_PYTHON.exists(), (
        "the client's virtualenv is missing: run `make test` (it builds .venv-bai19)"
    )
    root = api.keypairs["root"]
    env = {
        **os.environ,
        "BACKEND_ENDPOINT": api.base_url,
        "BACKEND_ACCESS_KEY": root.access_key,
        "BACKEND_SECRET_KEY": root.secret_key,
    }
    env.pop("PYTHONPATH", None)
    proc = await asyncio.create_subprocess_exec(
        str(CLIENT_PYTHON),
        str(SCENARIO),
        "client-01",
        "python:3.6",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, err.decode()[-3000:]
    seen = json.loads(out)
    assert seen["hello"]["version"] == "v4.20190615"
    assert seen["created"]["created"] is True and seen["created"]["kernelId"] == "client-01"
    assert seen["again"] == {"kernelId": "client-01", "created": False, "status": "RUNNING"}
    info = seen["info"]
    assert info["status"] == "RUNNING" and info["lang"] == "python:3.6" and info["numQueriesExecuted"] >= 1
    for key in ("age", "memoryLimit", "cpuCreditUsed", "creationTime"):
        assert key in info
    assert seen["info_after_restart"]["statusInfo"] == "restarting"
    assert seen["info_after_restart"]["numQueriesExecuted"] > info["numQueriesExecuted"]
    assert seen["destroy"]["stats"]["status"] == "terminated"
    events = [e["event"] for e in seen["events"]]
    assert is_startup(events, late=True), events
    assert all(e["data"]["sessionId"] == "client-01" and e["id"] for e in seen["events"])
    restart = [e["event"] for e in seen["restart_events"]]
    assert restart[-1] == "kernel_started" and {e["data"]["reason"] for e in seen["restart_events"]} == {
        "restarting"
    }
    assert sys.version_info >= (3, 11)


def client_env(api: RunningApi, who: str = "alice") -> dict[str, str]:
    keypair = api.keypairs[who]
    env = {
        **os.environ,
        "BACKEND_ENDPOINT": api.base_url,
        "BACKEND_ACCESS_KEY": keypair.access_key,
        "BACKEND_SECRET_KEY": keypair.secret_key,
    }
    env.pop("PYTHONPATH", None)
    return env


async def run_client(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    return proc.returncode or 0, out.decode(), err.decode()


def stdout_of(results: list[dict]) -> str:
    return "".join(item[1] for r in results for item in r["console"] if item[0] == "stdout")


async def test_backendai_client_19_09_runs_code(api: RunningApi, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "main.py").write_text("print(open('data/input.txt').read().strip() * 2)\n")
    (tmp_path / "data" / "input.txt").write_text("ab\n")
    code, out, err = await run_client(
        [
            str(CLIENT_PYTHON),
            str(REPO / "tests" / "client" / "bai19_code.py"),
            "client-code",
            "real/python",
            str(tmp_path),
        ],
        client_env(api),
    )
    assert code == 0, err[-3000:]
    seen = json.loads(out)
    assert seen["status"] == "RUNNING"
    assert stdout_of(seen["query"]) == "42\n" and stdout_of(seen["state"]) == "43\n"
    assert seen["continued"][0]["status"] == "continued" and stdout_of(seen["continued"]) == "0\n1\n2\n"
    assert seen["input"][0]["status"] == "waiting-input" and "ALICE" in stdout_of(seen["input"])
    assert "42" in stdout_of(seen["stream"])
    assert "os" in json.dumps(seen["complete"])
    assert "kernel ready" in seen["logs"]["result"]["logs"]
    assert {"main.py", "data"} <= {f["filename"] for f in json.loads(seen["files"]["files"])}
    assert seen["batch"][-1]["status"] == "finished" and seen["batch"][-1]["exitCode"] == 0
    assert "abab" in stdout_of(seen["batch"])
    assert seen["downloaded"] == "ab\n"
    interrupted = seen["interrupted"]
    assert interrupted[-1]["status"] == "finished"
    assert any(
        "KeyboardInterrupt" in item[1] for r in interrupted for item in r["console"] if item[0] == "stderr"
    )
    assert seen["info"]["numQueriesExecuted"] > 10
    assert all(isinstance(v, int) for k, v in seen["destroy"]["stats"].items() if k != "status")


async def test_backendai_client_19_09_flows(api: RunningApi) -> None:
    """docs/conformance.md, "The client's flows": each as a user of the client writes it."""
    env = {"BACKEND_ENDPOINT": api.base_url, **os.environ}
    for role, name in (("USER", "alice"), ("OTHER", "bob"), ("ADMIN", "admin")):
        env[f"{role}_ACCESS_KEY"] = api.keypairs[name].access_key
        env[f"{role}_SECRET_KEY"] = api.keypairs[name].secret_key
    env.pop("PYTHONPATH", None)
    code, out, err = await run_client(
        [str(CLIENT_PYTHON), str(REPO / "tests" / "client" / "bai19_flows.py"), "flow", "python:3.6"], env
    )
    assert code == 0, err[-3000:]
    seen = json.loads(out)
    assert is_startup(seen["stream_then_create"]), seen["stream_then_create"]
    assert seen["restart_status"] == "RUNNING"
    assert is_startup([e for e, _ in seen["restart_events"]], restart=True), seen["restart_events"]
    assert {r for _, r in seen["restart_events"]} == {"restarting"}
    assert seen["destroy_events"] == [
        ["kernel_terminating", "user-requested"],
        ["kernel_terminated", "user-requested"],
    ]
    assert seen["destroy"]["stats"]["status"] == "terminated"
    assert seen["enqueued"] == {"created": True, "status": "PENDING"} and seen["queued_status"] == "RUNNING"
    for name in ("no_reuse", "other_image"):
        assert seen[name]["status"] == 400 and seen[name]["type"] == "kernel-already-exists", seen[name]
        assert seen[name]["msg"], seen[name]  # what the CLI prints under the title
    assert seen["reused"] == {"created": False, "status": "RUNNING"}
    assert seen["admin_for_user"] == api.keypairs["alice"].access_key and seen["admin_reads"]
    assert seen["user_for_user"]["status"] == 403 and seen["user_reads_other"]["status"] == 403
    assert seen["tagged"] == {"tag": "nightly", "domain": "default", "group": "research"}
    assert seen["foreign_group"]["status"] == 400 and "invalid group" in seen["foreign_group"]["msg"]


async def test_backendai_cli_gpu_resources_and_rm_stats(api: RunningApi) -> None:
    """The CLI sends -r values as strings ("1"); `rm -s` formats every stat with int()."""
    cli = [str(REPO / ".venv-bai19" / "bin" / "backend.ai")]
    env = client_env(api)
    code, out, err = await run_client(
        [
            *cli,
            "start",
            "-t",
            "cli-gpu",
            "-r",
            "cuda.device=1",
            "-r",
            "mem=1g",
            "-r",
            "cpu=1.00",
            "python:3.6",
        ],
        env,
    )
    assert code == 0 and "created and ready" in out + err, (out, err)
    info = (await api.client("alice").call("GET", "/kernel/cli-gpu")).body
    assert info["memoryLimit"] == 1 << 20 and info["status"] == "RUNNING"
    code, out, err = await run_client([*cli, "rm", "-s", "cli-gpu"], env)
    assert code == 0 and "cpu_used_msec" in out and "Traceback" not in out + err, (out, err)
    code, out, err = await run_client(
        [*cli, "start", "-t", "cli-shares", "-r", "cuda.shares=0.5", "python:3.6"], env
    )
    assert code != 0 and "Missing or invalid API parameters" in out + err and "whole GPUs" in out + err, (
        out,
        err,
    )


async def test_backendai_cli_run_ps_logs(api: RunningApi) -> None:
    cli = [str(REPO / ".venv-bai19" / "bin" / "backend.ai")]
    small = ["-r", "cpu=0.5", "-r", "mem=256m"]  # the real node has 2 CPUs
    env = client_env(api)
    code, out, err = await run_client(
        [*cli, "run", "--rm", "-s", *small, "-c", "print(6*7)", "real/python"], env
    )
    assert code == 0 and "42" in out.splitlines(), (out, err)
    assert "cpu_used_msec" in out + err and "Error while printing stats" not in out + err, (out, err)
    code, out, err = await run_client(
        [*cli, "run", "-t", "cli-kept", *small, "-c", "print('kept')", "real/python"], env
    )
    assert code == 0 and "kept" in out, (out, err)
    code, out, err = await run_client([*cli, "ps"], env)
    assert code == 0 and "cli-kept" in out and "RUNNING" in out, (out, err)
    code, out, err = await run_client([*cli, "logs", "cli-kept"], env)
    assert code == 0 and "kernel ready" in out, (out, err)
    # Another user's listing does not show it.
    code, out, err = await run_client([*cli, "ps"], client_env(api, "bob"))
    assert code == 0 and "cli-kept" not in out, (out, err)
    code, out, err = await run_client([*cli, "admin", "sessions", "--status", "ALL"], client_env(api, "root"))
    assert code == 0 and "cli-kept" in out, (out, err)
    assert (await api.client("alice").call("DELETE", "/kernel/cli-kept")).status == 200
