"""The operator as a real process, for the integration tests (killable with -9)."""

from __future__ import annotations

import os
from pathlib import Path

from kubernel_testkit.processes import ServiceProcess, free_port

# Sessions go to the simulated nodes unless their alias says otherwise; the real-node
# aliases (scheduling: {}) run on the test bed's real node, from its local registry.
TEST_IMAGES = """\
allowedRegistries: [registry.example, registry.invalid]
scheduling:
  nodeSelector: {kubernel.io/simulated-node: "true"}
  tolerations: [{key: kubernel.io/simulated-node, operator: Exists, effect: NoSchedule}]
aliases:
  python:3.6:
    image: registry.example/lablup/python:3.6-ubuntu18.04
    servicePorts: [{name: jupyter, protocol: http, ports: [8080]}]
  real/python:
    image: registry.kubernel.test/kubernel/python:3.11
    command: []
    runner: true
    scheduling: {}
    guarantee: {cpu: 10%}  # as the dev table's: idle kernels need little of the real node's 2 CPUs
  real/fresh: {image: registry.kubernel.test/kubernel/python:fresh, command: [], runner: true, scheduling: {}}
  real/missing: {image: registry.kubernel.test/kubernel/python:no-such-tag, command: [], scheduling: {}}
  real/runtime-class:
    image: registry.kubernel.test/kubernel/python:3.11
    command: []
    runner: true
    scheduling: {runtimeClassName: kubernel-runc}
  real/broken-runtime:
    image: registry.kubernel.test/kubernel/python:3.11
    command: []
    scheduling: {runtimeClassName: kubernel-test-broken}
defaultCommand: [sleep, infinity]
"""


# The shared test operator serves the tests' namespaces (t-*, see the namespace
# fixture) and leaves others alone, so the Helm test can run the chart's operator
# with its own ServiceAccount in a namespace of its own (h-*).
TEST_NAMESPACES = "t-*"


class OperatorProcess(ServiceProcess):
    def __init__(self, kubeconfig: str, workdir: Path, extra_env: dict[str, str] | None = None) -> None:
        images = workdir / "images.yaml"
        images.write_text(TEST_IMAGES)
        port, self.metrics_port = free_port(), free_port()
        env = {
            **os.environ,
            "KUBECONFIG": kubeconfig,
            "KUBERNEL_IMAGES": str(images),
            "KUBERNEL_OPERATOR_HEALTH_HOST": "127.0.0.1",
            "KUBERNEL_OPERATOR_HEALTH_PORT": str(port),
            "KUBERNEL_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "KUBERNEL_START_DEADLINE": "15",
            "KUBERNEL_POD_GRACE": "1",
            "KUBERNEL_NAMESPACES": TEST_NAMESPACES,
            **(extra_env or {}),
        }
        super().__init__(
            "operator",
            ["kubernel_operator"],
            env,
            workdir / "operator.log",
            f"http://127.0.0.1:{port}/healthz",
        )
