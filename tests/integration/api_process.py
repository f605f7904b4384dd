"""The API as a real process."""

from __future__ import annotations

import os
from pathlib import Path

from kubernel_testkit.processes import ServiceProcess, free_port

from .operator_process import TEST_IMAGES


class ApiProcess(ServiceProcess):
    def __init__(
        self, kubeconfig: str, namespace: str, workdir: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        images = workdir / "images.yaml"
        images.write_text(TEST_IMAGES)
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "KUBECONFIG": kubeconfig,
            "KUBERNEL_IMAGES": str(images),
            "KUBERNEL_API_HOST": "127.0.0.1",
            "KUBERNEL_API_PORT": str(port),
            "KUBERNEL_API_METRICS_PORT": str(free_port()),
            "KUBERNEL_API_NAMESPACE": namespace,
            "KUBERNEL_API_HEARTBEAT": "0.5",
            **(extra_env or {}),
        }
        super().__init__(
            "API", ["kubernel_api", "serve"], env, workdir / "api.log", self.base_url + "/readyz"
        )
