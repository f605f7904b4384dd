"""Connecting to the cluster, the same way for the operator, the API and the admin command."""

from __future__ import annotations

from kubernetes_asyncio import client, config


async def connect() -> client.ApiClient:
    """In-cluster credentials when running in a Pod, else the kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()
