"""Fixtures of the fault suite: namespaces served by an operator of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from kubernel import resource as r
from kubernel_api import keypairs as kp
from kubernel_testkit.waiting import wait_until

from ..conftest import create_keypairs
from ..operator_process import OperatorProcess


@pytest.fixture
async def own_namespace(kube: client.ApiClient) -> AsyncIterator[str]:
    """A namespace (f-*) the shared test operator (t-*) leaves alone."""
    core = client.CoreV1Api(kube)
    name = f"f-{uuid.uuid4().hex[:10]}"
    await core.create_namespace({"metadata": {"name": name, "labels": {"kubernel.io/test": "true"}}})
    yield name
    await core.delete_namespace(name, propagation_policy="Background", grace_period_seconds=0)


@pytest.fixture
async def own_keypairs(kube: client.ApiClient, own_namespace: str) -> dict[str, kp.Keypair]:
    return await create_keypairs(kube, own_namespace)


@pytest.fixture
async def own_operator(
    kube: client.ApiClient, kubeconfig: str, crds: None, own_namespace: str, tmp_path: Path
) -> AsyncIterator[OperatorProcess]:
    """An operator process for own_namespace only; the test kills and starts it."""
    proc = OperatorProcess(kubeconfig, tmp_path, {"KUBERNEL_NAMESPACES": own_namespace})
    proc.start()
    yield proc
    # Sessions carry our finalizer: end them while an operator still runs, or the
    # namespace stays Terminating for ever.
    if proc.proc.poll() is not None:
        proc.start()
    custom = client.CustomObjectsApi(kube)
    await custom.delete_collection_namespaced_custom_object(r.GROUP, r.VERSION, own_namespace, r.PLURAL)

    async def gone() -> bool:
        listed = await custom.list_namespaced_custom_object(r.GROUP, r.VERSION, own_namespace, r.PLURAL)
        return not listed["items"]

    await wait_until(gone, timeout=60, what="the test's sessions finalized")
    proc.stop()
