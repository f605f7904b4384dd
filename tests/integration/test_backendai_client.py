"""The published Backend.AI Python client (19.09 series, API v4.20190615) against the service."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from .conftest import RunningApi

REPO = Path(__file__).resolve().parents[2]
CLIENT_PYTHON = REPO / ".venv-bai19" / "bin" / "python"
SCENARIO = REPO / "tests" / "client" / "bai19_scenario.py"
STARTUP = ["kernel_preparing", "kernel_pulling", "kernel_creating", "kernel_started"]


async def test_backendai_client_19_09_full_session(api: RunningApi) -> None:
    assert CLIENT_PYTHON.exists(), "the client's virtualenv is missing: run `make test` (it builds .venv-bai19)"
    root = api.keypairs["root"]
    env = {**os.environ, "BACKEND_ENDPOINT": api.base_url, "BACKEND_ACCESS_KEY": root.access_key,
           "BACKEND_SECRET_KEY": root.secret_key}
    env.pop("PYTHONPATH", None)
    proc = await asyncio.create_subprocess_exec(str(CLIENT_PYTHON), str(SCENARIO), "client-01", "python:3.6",
                                                env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
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
    assert seen["destroy"]["stats"]["status"] == "TERMINATED"
    events = [e["event"] for e in seen["events"]]
    assert events in (STARTUP, [e for e in STARTUP if e != "kernel_pulling"]), events
    assert all(e["data"]["sessionId"] == "client-01" and e["id"] for e in seen["events"])
    restart = [e["event"] for e in seen["restart_events"]]
    assert restart[-1] == "kernel_started" and {e["data"]["reason"] for e in seen["restart_events"]} == {"restarting"}
    assert sys.version_info >= (3, 11)
