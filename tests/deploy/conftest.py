"""The chart deployed on the test bed's real node (`make deploy`): one install per module.

The install is the one `make deploy` makes (release and namespace ``kubernel``), so a
`make deploy` already on the test bed is upgraded in place and removed at the end.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from kubernel_testbed import deploy
from kubernel_testbed.launcher import Testbed
from kubernel_testbed.settings import TestbedSettings


@dataclass(frozen=True)
class Installed:
    bed: Testbed
    deployment: deploy.Deployment

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bed.layout.bin / "kubectl"), f"--kubeconfig={self.bed.layout.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def get(self, *args: str, namespace: str = deploy.NAMESPACE) -> Any:
        return json.loads(self.kubectl("-n", namespace, "get", *args, "-o", "json").stdout)

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(self.bed.layout.bin / "helm"),
                f"--kubeconfig={self.bed.layout.kubeconfig}",
                "--namespace",
                deploy.NAMESPACE,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=400,
        )


@pytest.fixture(scope="module")
def installed(kubeconfig: str) -> Iterator[Installed]:
    bed = Testbed(TestbedSettings.from_env())
    if not bed.settings.real_node or str(bed.layout.kubeconfig) != kubeconfig:
        pytest.skip("needs the local test bed's real node (KUBERNEL_REAL_NODE=1, no external KUBECONFIG)")
    try:
        yield Installed(bed, deploy.deploy(bed))
    finally:  # also after a deploy that failed half-way
        deploy.undeploy(bed)  # a no-op after the uninstall test
