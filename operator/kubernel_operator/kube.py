"""Thin async Kubernetes calls of the operator (the I/O edge; no decisions here)."""

from __future__ import annotations

from collections.abc import Awaitable

import kopf
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kubernel import resource as r
from kubernel.client.raw import claim_labels, read_items, read_json


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.networking = client.NetworkingV1Api(api)

    async def get_session(self, namespace: str, name: str) -> dict | None:
        try:
            return await self.custom.get_namespaced_custom_object(
                r.GROUP, r.VERSION, namespace, r.PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def patch_session_status(
        self, namespace: str, name: str, status: dict, resource_version: str
    ) -> dict:
        """Merge-patch the status, failing with 409 if the object moved on since it was read."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        return await self.custom.patch_namespaced_custom_object_status(
            r.GROUP, r.VERSION, namespace, r.PLURAL, name, body, _content_type="application/merge-patch+json"
        )

    async def delete_session(self, namespace: str, name: str) -> None:
        try:
            await self.custom.delete_namespaced_custom_object(r.GROUP, r.VERSION, namespace, r.PLURAL, name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def list_pods(self, namespace: str, session: str) -> list[dict]:
        return await read_items(
            await self.core.list_namespaced_pod(
                namespace, label_selector=f"{r.LABEL_SESSION}={session}", _preload_content=False
            )
        )

    async def list_pods_labelled(self, namespace: str, selector: str) -> list[dict]:
        return await read_items(
            await self.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
        )

    async def pod_event_reasons(self, namespace: str, pod: str) -> set[str]:
        """The reasons of a Pod's Events, from the API server's watch cache
        (resourceVersion 0): Events cannot be selected by field in etcd, so a quorum
        list decodes every Event of the namespace. With 2,000 sessions that took 17 s
        a call and held the API server at full load (make bench, docs/performance.md)."""
        events = await read_items(
            await self.core.list_namespaced_event(
                namespace,
                field_selector=f"involvedObject.kind=Pod,involvedObject.name={pod}",
                resource_version="0",
                _preload_content=False,
            )
        )
        return {e["reason"] for e in events if e.get("reason")}

    async def create(self, namespace: str, manifest: dict) -> bool:
        """Create a Pod, Service, NetworkPolicy or Secret: True if created, False if it existed
        already (a retry)."""
        create = {
            "Pod": self.core.create_namespaced_pod,
            "Service": self.core.create_namespaced_service,
            "NetworkPolicy": self.networking.create_namespaced_network_policy,
            "Secret": self.core.create_namespaced_secret,
        }[manifest["kind"]]
        try:
            await read_json(await create(namespace, manifest, _preload_content=False))
        except ApiException as exc:
            if exc.status != 409:
                raise
            if manifest["kind"] == "Pod":
                existing = await read_json(
                    await self.core.read_namespaced_pod(
                        manifest["metadata"]["name"], namespace, _preload_content=False
                    )
                )
                if r.owner_uid(existing) != r.owner_uid(manifest):
                    # A Pod of the same name belongs to an earlier session of this name
                    # (still being deleted): never adopt it; try again once it is gone.
                    raise kopf.TemporaryError(
                        f"Pod {manifest['metadata']['name']} of an earlier session is still being deleted",
                        delay=1,
                    ) from None
            return False
        return True

    async def delete_pods(self, namespace: str, selector: str, grace_seconds: int) -> None:
        await self.core.delete_collection_namespaced_pod(
            namespace, label_selector=selector, grace_period_seconds=grace_seconds
        )

    async def patch_pod(self, namespace: str, name: str, patch: dict) -> dict:
        """Merge-patch a Pod (a claim: its ``resourceVersion`` makes it fail with 409 if the Pod moved on)."""
        return await read_json(
            await self.core.patch_namespaced_pod(
                name, namespace, patch, _content_type="application/merge-patch+json", _preload_content=False
            )
        )

    async def resize_pod(self, namespace: str, name: str, patch: dict) -> dict:
        """Patch a Pod's ``resize`` subresource: its containers' CPU and memory, in place."""
        return await read_json(
            await self.core.patch_namespaced_pod_resize(
                name,
                namespace,
                patch,
                _content_type="application/strategic-merge-patch+json",
                _preload_content=False,
            )
        )

    async def read_pod(self, namespace: str, name: str) -> dict | None:
        try:
            return await read_json(
                await self.core.read_namespaced_pod(name, namespace, _preload_content=False)
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def delete_pod(
        self, namespace: str, name: str, grace_seconds: int, *, resource_version: str | None = None
    ) -> None:
        """Delete a Pod (gone already is fine); with ``resource_version``, only if it has not
        changed since (else nothing: a 409 says it moved on, and the caller reads it again)."""
        options: dict = {"gracePeriodSeconds": grace_seconds}
        if resource_version:
            options["preconditions"] = {"resourceVersion": resource_version}
        try:
            await self.core.delete_namespaced_pod(name, namespace, body=options)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    async def patch_pool_status(self, namespace: str, name: str, status: dict) -> None:
        """Merge-patch a KernelPool's status (the operator is its only writer)."""
        await _gone_is_fine(
            self.custom.patch_namespaced_custom_object_status(
                r.GROUP,
                r.VERSION,
                namespace,
                r.POOL_PLURAL,
                name,
                {"status": status},
                _content_type="application/merge-patch+json",
            )
        )

    async def delete_service(self, namespace: str, name: str) -> None:
        await _gone_is_fine(self.core.delete_namespaced_service(name, namespace))

    async def kernels_isolated(self, namespace: str) -> bool:
        """Whether a NetworkPolicy isolates the kernels of ``namespace`` (the chart's)."""
        found = await self.networking.list_namespaced_network_policy(
            namespace, label_selector=f"{r.LABEL_KERNELS_ISOLATED}=true", limit=1
        )
        return bool(found.items)

    async def delete_network_policy(self, namespace: str, name: str) -> None:
        await _gone_is_fine(self.networking.delete_namespaced_network_policy(name, namespace))

    async def claim_labels(self, namespace: str, names: list[str]) -> dict[str, dict[str, str] | None]:
        return await claim_labels(self.core, namespace, names)


async def _gone_is_fine(delete: Awaitable[object]) -> None:
    """A delete whose object is already gone (404) has nothing left to do."""
    try:
        await delete
    except ApiException as exc:
        if exc.status != 404:
            raise
