"""`make run`: the operator and the API in the foreground, one log, Ctrl-C stops both.

The control plane is started (or a configured cluster used) by the Makefile
before this runs; here: CRDs, the bootstrap superadmin keypair, then both
processes with their output prefixed, until Ctrl-C or either one exits.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from kubernel.runner import KEY_ENV, KEY_FILE_ENV

from .launcher import say

REPO = Path(__file__).resolve().parents[2]
ENV_FILE = REPO / ".local" / "backend.env"
RUNNER_KEY_FILE = REPO / ".local" / "runner.key"


async def _pipe(name: str, stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        sys.stdout.write(f"{name:<8} | {line.decode(errors='replace')}")
        sys.stdout.flush()


async def _run(env: dict[str, str]) -> int:
    python = sys.executable
    procs = {
        "operator": await asyncio.create_subprocess_exec(
            python, "-m", "kubernel_operator", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        ),
        "api": await asyncio.create_subprocess_exec(
            python, "-m", "kubernel_api", "serve", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        ),
    }
    pipes = [asyncio.create_task(_pipe(n, p.stdout)) for n, p in procs.items() if p.stdout]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waits = [asyncio.create_task(p.wait()) for p in procs.values()]
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([*waits, stopper], return_when=asyncio.FIRST_COMPLETED)
    say("stopping the operator and the API")
    for proc in procs.values():
        if proc.returncode is None:
            proc.terminate()
    try:
        await asyncio.wait_for(asyncio.gather(*waits), 20)
    except TimeoutError:
        for proc in procs.values():
            if proc.returncode is None:
                proc.kill()
        await asyncio.gather(*waits)
    await asyncio.gather(*pipes)
    stopper.cancel()
    failed = {n: p.returncode for n, p in procs.items() if p.returncode not in (0, -signal.SIGTERM)}
    if failed and not stop.is_set():
        say(f"exited: {failed}")
        return 1
    say("stopped (the control plane keeps running; `make cluster-down` stops it)")
    return 0


def runner_key_file() -> Path:
    """The key runner tokens are derived from (docs/runner.md), kept across runs so that
    sessions started by an earlier `make run` stay reachable."""
    if not RUNNER_KEY_FILE.exists():
        RUNNER_KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(RUNNER_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return RUNNER_KEY_FILE


def main() -> int:
    env = dict(os.environ)
    if not env.get(KEY_ENV):
        env.setdefault(KEY_FILE_ENV, str(runner_key_file()))
    env.setdefault("KUBERNEL_IMAGES", str(REPO / "cluster" / "images.dev.yaml"))
    env.setdefault("KUBERNEL_API_HOST", "127.0.0.1")
    env.setdefault("KUBERNEL_API_PORT", "8090")
    endpoint = f"http://{env['KUBERNEL_API_HOST']}:{env['KUBERNEL_API_PORT']}"
    say("applying crds/")
    subprocess.run(
        ["kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds")],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        ["kubectl", "wait", "--for=condition=Established", "--timeout=30s", "crd/kernelsessions.kubernel.io"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    namespace = env.get("KUBERNEL_API_NAMESPACE", "default")
    say(f"applying the warm pool of cluster/pools.dev.yaml in namespace {namespace}")
    subprocess.run(
        ["kubectl", "wait", "--for=condition=Established", "--timeout=30s", "crd/kernelpools.kubernel.io"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        ["kubectl", "apply", "-n", namespace, "-f", str(REPO / "cluster" / "pools.dev.yaml")],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "kubernel_api",
            "keypair",
            "bootstrap",
            "--env-file",
            str(ENV_FILE),
            "--endpoint",
            endpoint,
        ],
        check=True,
        env=env,
    )
    say(
        f"API on {endpoint}; in another shell: `source {ENV_FILE.relative_to(REPO)}` for the Backend.AI client, "
        "`source <(.venv/bin/python -m kubernel_testbed env)` for kubectl; the web console at "
        f"{endpoint}/console/ (its keys are in that file). Ctrl-C stops."
    )
    return asyncio.run(_run(env))
