"""A service of ours as a real process, for the tests that kill it (-9) and start it again."""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from kubernel.runner import KEY_ENV

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The key runner tokens are derived from: one per test run, shared by every operator
# and API process the tests start (and the in-process APIs: conftest.api_settings).
RUNNER_KEY = secrets.token_hex(32)


class ServiceProcess:
    def __init__(
        self, what: str, module_args: list[str], env: dict[str, str], log: Path, ready_url: str
    ) -> None:
        self.what, self.module_args, self.log, self.ready_url = what, module_args, log, ready_url
        self.env = {KEY_ENV: RUNNER_KEY, **env}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            # Unbuffered: a process killed with -9 leaves its whole log behind.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *self.module_args],
                env={**self.env, "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.what} exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.kill()  # a process that never got ready must not outlive the test
        raise TimeoutError(f"{self.what} not ready after 30s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """kill -9: no clean-up, no goodbye."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode if self.proc else None
