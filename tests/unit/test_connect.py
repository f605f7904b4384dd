"""The Kubernetes client ignores proxy environment variables (and ~/.netrc)."""

from __future__ import annotations

from kubernetes_asyncio import client

from kubernel.client.connect import without_environment_proxies


async def test_the_client_session_does_not_trust_the_environment() -> None:
    api = client.ApiClient(client.Configuration(host="https://127.0.0.1:1"))
    assert api.rest_client.pool_manager.trust_env  # what kubernetes_asyncio does by itself
    async with without_environment_proxies(api) as configured:
        assert configured.rest_client.pool_manager.trust_env is False
