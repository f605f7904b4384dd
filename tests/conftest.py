"""Shared fixtures: one control plane per test run, a namespace per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client, config

from kubernel_testbed.launcher import Testbed, external_cluster_reachable, say
from kubernel_testbed.settings import TestbedSettings
from kubernel_testkit.waiting import wait_until


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    """The kubeconfig of the cluster under test.

    A reachable cluster named by KUBECONFIG is used as it is; otherwise the
    local test bed is started (or reused) and stopped again at the end unless
    it was already running or KUBERNEL_KEEP_TESTBED=1.
    """
    if external_cluster_reachable():
        yield os.environ["KUBECONFIG"]
        return
    testbed = Testbed(TestbedSettings.from_env())
    was_running = testbed.running()
    testbed.up()
    yield str(testbed.layout.kubeconfig)
    if not was_running and os.environ.get("KUBERNEL_KEEP_TESTBED") != "1":
        say("stopping the control plane started for this test run")
        testbed.down()
        if testbed.settings.real_node:  # the machine as it was: no containers, mounts, links
            from kubernel_testbed import nodehost, realnode

            left = nodehost.leftovers(realnode.node_layout(testbed.layout))
            assert not left, f"the real node left behind: {left}"


@pytest.fixture(scope="session")
async def kube(kubeconfig: str) -> AsyncIterator[client.ApiClient]:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    async with client.ApiClient(cfg) as api:
        yield api


@pytest.fixture
async def namespace(kube: client.ApiClient, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh namespace that enforces the ``restricted`` Pod Security Standard, as the chart's
    session namespace does: the API server refuses any kernel Pod looser than that. Tests of
    the test bed's own plain Pods mark themselves ``pod_security("privileged")``."""
    core = client.CoreV1Api(kube)
    name = f"t-{uuid.uuid4().hex[:10]}"
    marker = request.node.get_closest_marker("pod_security")
    level = marker.args[0] if marker else "restricted"
    labels = {"kubernel.io/test": "true", "pod-security.kubernetes.io/enforce": level}
    await core.create_namespace({"metadata": {"name": name, "labels": labels}})

    async def default_service_account() -> bool:
        try:
            await core.read_namespaced_service_account("default", name)
            return True
        except client.ApiException as exc:
            if exc.status == 404:
                return False
            raise

    await wait_until(default_service_account, timeout=30, what=f"ServiceAccount {name}/default")
    yield name
    await core.delete_namespace(name, propagation_policy="Background", grace_period_seconds=0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)
        if "fault" in item.path.parts:
            item.add_marker(pytest.mark.fault)
        if "deploy" in item.path.parts:  # needs the control plane too: `make unit` leaves it out
            item.add_marker(pytest.mark.deploy)
            item.add_marker(pytest.mark.integration)


def testbed_binary(name: str) -> str:
    """A binary of the test bed (built by `make binaries`), whatever cluster is used."""
    from kubernel_testbed.settings import bin_dir

    return str(bin_dir(TestbedSettings.from_env().cache_dir) / name)


@pytest.fixture(scope="session")
def kubectl_bin() -> str:
    return testbed_binary("kubectl")


@pytest.fixture(scope="session")
def helm_bin() -> str:
    return testbed_binary("helm")


@pytest.fixture(scope="session")
def crds(kubeconfig: str, kubectl_bin: str) -> None:
    """The repository's CRDs, applied and Established."""
    import subprocess
    from pathlib import Path

    crd_dir = Path(__file__).resolve().parents[1] / "crds"
    run = [kubectl_bin, f"--kubeconfig={kubeconfig}"]
    subprocess.run(
        [*run, "apply", "--server-side", "--force-conflicts", "-f", str(crd_dir)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*run, "wait", "--for=condition=Established", "--timeout=30s", "-f", str(crd_dir)],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def operator(kubeconfig: str, crds: None, kubectl_bin: str, tmp_path_factory: pytest.TempPathFactory):
    from .integration.operator_process import OperatorProcess

    proc = OperatorProcess(kubeconfig, tmp_path_factory.mktemp("operator"))
    proc.start()
    wait_until_new_namespaces_are_served(kubeconfig, kubectl_bin)
    yield proc
    proc.stop()


def wait_until_new_namespaces_are_served(kubeconfig: str, kubectl_bin: str, timeout: float = 60) -> None:
    """The shared operator serves namespaces by pattern (t-*), which kopf discovers by listing
    Namespaces and then watching them. kopf 1.45's watch starts with a listing of its own whose
    items it ignores, so a namespace created between the two listings is never served (seen:
    the first test's namespace, 1 run in 3). Probe with fresh namespaces until one is served:
    a session there that asks to be terminated, which the operator ends without any Pod."""
    import json
    import subprocess
    import time
    import uuid

    from kubernel import resource as r

    run = [kubectl_bin, f"--kubeconfig={kubeconfig}"]
    deadline = time.monotonic() + timeout
    probes: list[str] = []
    try:
        while time.monotonic() < deadline:
            namespace = f"t-probe-{uuid.uuid4().hex[:8]}"
            probes.append(namespace)
            session = {
                "apiVersion": r.API_VERSION,
                "kind": r.KIND,
                "metadata": {"name": "probe", "namespace": namespace},
                "spec": {
                    "sessionId": "probe",
                    "owner": {"accessKey": "AKIAPROBE"},
                    "image": "python:3.6",
                    "terminationRequested": "user-requested",
                },
            }
            subprocess.run([*run, "create", "namespace", namespace], check=True, capture_output=True)
            subprocess.run(
                [*run, "create", "-f", "-"],
                input=json.dumps(session),
                text=True,
                check=True,
                capture_output=True,
            )
            served = time.monotonic() + 3
            while time.monotonic() < served:
                phase = subprocess.run(
                    [*run, "-n", namespace, "get", r.PLURAL, "probe", "-o", "jsonpath={.status.phase}"],
                    capture_output=True,
                    text=True,
                ).stdout
                if phase == "Terminated":
                    return
                time.sleep(0.1)
        raise TimeoutError(f"the test operator served none of the namespaces {probes} within {timeout}s")
    finally:
        for namespace in probes:
            subprocess.run([*run, "delete", "namespace", namespace, "--wait=false"], capture_output=True)
