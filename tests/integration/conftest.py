"""Fixtures of the API tests: keypairs in the test namespace and the API on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import yaml
from aiohttp import web
from kubernetes_asyncio import client
from pydantic import SecretBytes

from kubernel.images import ImageTable
from kubernel.metrics import serve_metrics
from kubernel_api import keypairs as kp
from kubernel_api.app import make_app
from kubernel_api.keys import METRICS, SESSIONS
from kubernel_api.kube import Kube
from kubernel_api.limits import Limits
from kubernel_api.settings import ApiSettings
from kubernel_testkit.api_client import ApiClient
from kubernel_testkit.processes import RUNNER_KEY, free_port
from kubernel_testkit.waiting import wait_until

from .operator_process import TEST_IMAGES

# name -> (role, domain, groups, limits)
KEYPAIRS = {
    "alice": (kp.Role.USER, "default", ("default", "research"), Limits()),
    "bob": (kp.Role.USER, "default", ("default",), Limits()),
    "limited": (kp.Role.USER, "default", ("default",), Limits(cpu="2", memory="4Gi", concurrent_sessions=1)),
    "admin": (kp.Role.ADMIN, "default", ("default",), Limits()),
    "otheradmin": (kp.Role.ADMIN, "other", ("default",), Limits()),
    "carol": (kp.Role.USER, "other", ("default",), Limits()),
    "root": (kp.Role.SUPERADMIN, "default", ("default",), Limits()),
    "frugal": (kp.Role.USER, "default", ("default",), Limits(total_cpu="1", total_memory="1Gi")),
}


def api_settings(namespace: str, **overrides: object) -> ApiSettings:
    fields: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "namespace": namespace,
        "images": ImageTable.model_validate(yaml.safe_load(TEST_IMAGES)),
        "runner_key_value": SecretBytes(RUNNER_KEY.encode()),
        "heartbeat_seconds": 0.5,
        "max_wait_seconds": 30,
        "destroy_wait_seconds": 15,
        "kube_timeout_seconds": 3,
        "server_limits": Limits(cpu="16", memory="64Gi", gpu=8, cluster_size=4),
    }
    return ApiSettings(**{**fields, **overrides})


def make_keypairs() -> dict[str, kp.Keypair]:
    """KEYPAIRS as keypairs with fixed keys."""
    return {
        name: kp.Keypair(
            access_key=f"AKIATEST{name.upper()}",
            secret_key=f"secret-of-{name}-0123456789",
            role=role,
            domain=domain,
            groups=groups,
            limits=limits,
        )
        for name, (role, domain, groups, limits) in KEYPAIRS.items()
    }


async def create_keypairs(kube: client.ApiClient, namespace: str) -> dict[str, kp.Keypair]:
    """The test keypairs as Secrets in ``namespace``."""
    core = client.CoreV1Api(kube)
    made = make_keypairs()
    for keypair in made.values():
        await core.create_namespaced_secret(namespace, kp.to_secret(keypair))
    return made


@pytest.fixture
async def keypairs(kube: client.ApiClient, namespace: str) -> dict[str, kp.Keypair]:
    return await create_keypairs(kube, namespace)


@dataclass
class RunningApi:
    base_url: str
    app: web.Application
    http: aiohttp.ClientSession
    keypairs: dict[str, kp.Keypair]
    metrics_url: str = ""

    def client(self, name: str, **kwargs: object) -> ApiClient:
        return ApiClient(self.base_url, self.keypairs[name], self.http, **kwargs)

    @property
    def sessions(self):
        return self.app[SESSIONS]


async def start_api(kube: client.ApiClient, settings: ApiSettings) -> tuple[web.AppRunner, str]:
    app = make_app(settings, Kube.of(kube, settings))
    runner = web.AppRunner(app, shutdown_timeout=2, keepalive_timeout=settings.connection_idle_seconds)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def api(
    kube: client.ApiClient, namespace: str, keypairs: dict[str, kp.Keypair], operator: object
) -> AsyncIterator[RunningApi]:
    runner, base_url = await start_api(kube, api_settings(namespace))
    metrics_port = free_port()  # as `python -m kubernel_api serve` does, on a port of its own
    metrics = await serve_metrics(runner.app[METRICS].registry, "127.0.0.1", metrics_port)
    async with aiohttp.ClientSession() as http:

        async def ready() -> bool:  # as a readiness probe would: caches loaded, watch connected
            async with http.get(base_url + "/readyz") as resp:
                return resp.status == 200

        await wait_until(ready, timeout=30, what="the API ready")
        yield RunningApi(base_url, runner.app, http, keypairs, f"http://127.0.0.1:{metrics_port}/metrics")
    await metrics.cleanup()
    await runner.cleanup()
