"""The API as a real process, for the tests that kill it (-9) and start it again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .conftest import free_port
from .operator_process import REPO, TEST_IMAGES


class ApiProcess:
    def __init__(self, kubeconfig: str, namespace: str, workdir: Path) -> None:
        images = workdir / "images.yaml"
        images.write_text(TEST_IMAGES)
        self.log = workdir / "api.log"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "KUBECONFIG": kubeconfig, "KUBERNEL_IMAGES": str(images),
                    "KUBERNEL_API_HOST": "127.0.0.1", "KUBERNEL_API_PORT": str(self.port),
                    "KUBERNEL_API_NAMESPACE": namespace, "KUBERNEL_API_HEARTBEAT": "0.5"}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "kubernel_api", "serve"], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.base_url + "/readyz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"API not ready after 30s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
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
