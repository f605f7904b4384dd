"""The operator as a real process, for the integration tests (killable with -9)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST_IMAGES = """\
allowedRegistries: [registry.example, registry.invalid]
aliases:
  python:3.6: {image: registry.example/lablup/python:3.6-ubuntu18.04}
defaultCommand: [sleep, infinity]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OperatorProcess:
    def __init__(self, kubeconfig: str, workdir: Path) -> None:
        images = workdir / "images.yaml"
        images.write_text(TEST_IMAGES)
        self.log = workdir / "operator.log"
        self.port = _free_port()
        self.env = {
            **os.environ, "KUBECONFIG": kubeconfig, "KUBERNEL_IMAGES": str(images),
            "KUBERNEL_OPERATOR_HEALTH_HOST": "127.0.0.1", "KUBERNEL_OPERATOR_HEALTH_PORT": str(self.port),
            "KUBERNEL_START_DEADLINE": "3", "KUBERNEL_TIMER_INTERVAL": "0.5", "KUBERNEL_POD_GRACE": "1",
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "kubernel_operator"], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"operator not live after 30s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """kill -9: no clean-up, no goodbye."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
