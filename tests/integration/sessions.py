"""Helpers for tests that drive KernelSessions directly through the Kubernetes API."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

from kubernel import resource as r
from kubernel_testkit.waiting import wait_until

ACCESS_KEY = "AKIATESTUSER0000001"


def session_body(token: str, image: str = "python:3.6", access_key: str = ACCESS_KEY, **spec: Any) -> dict:
    return {
        "apiVersion": r.API_VERSION,
        "kind": r.KIND,
        "metadata": {"name": r.session_name(access_key, token)},
        "spec": {"sessionId": token, "owner": {"accessKey": access_key}, "image": image, **spec},
    }


class SessionClient:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    async def create(self, token: str, **kw: Any) -> str:
        body = session_body(token, **kw)
        await self.custom.create_namespaced_custom_object(r.GROUP, r.VERSION, self.namespace, r.PLURAL, body)
        return body["metadata"]["name"]

    async def get(self, name: str) -> dict | None:
        try:
            return await self.custom.get_namespaced_custom_object(
                r.GROUP, r.VERSION, self.namespace, r.PLURAL, name
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def patch_spec(self, name: str, spec: dict) -> None:
        await self.custom.patch_namespaced_custom_object(
            r.GROUP,
            r.VERSION,
            self.namespace,
            r.PLURAL,
            name,
            {"spec": spec},
            _content_type="application/merge-patch+json",
        )

    async def delete(self, name: str) -> None:
        await self.custom.delete_namespaced_custom_object(r.GROUP, r.VERSION, self.namespace, r.PLURAL, name)

    async def wait_phase(self, name: str, phase: str, timeout: float = 30) -> dict:
        async def reached() -> dict | None:
            body = await self.get(name)
            return body if body and (body.get("status") or {}).get("phase") == phase else None

        return await wait_until(reached, timeout=timeout, what=f"{name} in phase {phase}")

    async def wait_gone(self, name: str, timeout: float = 30) -> None:
        async def gone() -> bool:
            return await self.get(name) is None

        await wait_until(gone, timeout=timeout, what=f"{name} deleted")

    async def pods(self, name: str) -> list[client.V1Pod]:
        return (
            await self.core.list_namespaced_pod(self.namespace, label_selector=f"{r.LABEL_SESSION}={name}")
        ).items


def events(body: dict) -> list[tuple[str, str]]:
    return [(e["event"], e["reason"]) for e in body["status"]["lifecycle"]]


def seqs(body: dict) -> list[int]:
    return [e["seq"] for e in body["status"]["lifecycle"]]
