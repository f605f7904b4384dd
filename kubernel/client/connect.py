"""Connecting to the cluster, the same way for the operator, the API and the admin command."""

from __future__ import annotations

from kubernetes_asyncio import client, config


async def connect(connections: int | None = None) -> client.ApiClient:
    """In-cluster credentials when running in a Pod, else the kubeconfig; ``connections``
    sizes the connection pool (the client's default is 5 per CPU)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    if connections is not None:
        configuration.connection_pool_maxsize = connections
    return without_environment_proxies(client.ApiClient(configuration))


def without_environment_proxies(api: client.ApiClient) -> client.ApiClient:
    """kubernetes_asyncio hard-codes aiohttp's ``trust_env``, which makes every request
    look up $HTTP(S)_PROXY and read ~/.netrc in a worker thread (two thread hops per
    call; make bench, docs/performance.md). The kubeconfig's ``proxy-url`` still
    applies: the client passes it with each request."""
    api.rest_client.pool_manager._trust_env = False  # no public setter
    return api
