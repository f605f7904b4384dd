"""The API's Kubernetes calls (the I/O edge; no decisions here).

Every call carries a timeout, so an unreachable API server turns into a quick
503 instead of a hanging request. At most ``concurrency`` calls are in flight;
the others wait their turn (bounded too) before their timeout starts, so a burst
of requests queues instead of timing out behind itself in the connection pool.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kubernel import resource as r
from kubernel.client.raw import claim_labels, read_bytes, read_items, read_json

from . import keypairs as kp

if TYPE_CHECKING:
    from .settings import ApiSettings

LOG_TAIL_LINES = 10000
WATCHES = 2  # the KernelSession and keypair informers' connections
QUEUE_TIMEOUTS = 6  # a call waits for its turn at most this many timeouts
P = ParamSpec("P")
T = TypeVar("T")


class Gone(Exception):
    """The API server no longer has the requested point in history."""


def gated(call: Callable[Concatenate[Kube, P], Awaitable[T]]) -> Callable[Concatenate[Kube, P], Awaitable[T]]:
    """A call that waits for a free slot first (raises TimeoutError after QUEUE_TIMEOUTS)."""

    @functools.wraps(call)
    async def in_turn(self: Kube, *args: P.args, **kwargs: P.kwargs) -> T:
        async with asyncio.timeout(self.timeout * QUEUE_TIMEOUTS):
            await self.slots.acquire()
        try:
            return await call(self, *args, **kwargs)
        finally:
            self.slots.release()

    return in_turn


QUOTA_WAIT_ATTEMPTS = 10  # half a second apart


class Kube:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        keypair_namespace: str,
        timeout: float,
        concurrency: int,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.keypair_namespace = keypair_namespace
        self.timeout = timeout
        self.slots = asyncio.Semaphore(concurrency)
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)

    @classmethod
    def of(cls, api: client.ApiClient, settings: ApiSettings) -> Kube:
        return cls(
            api,
            settings.namespace,
            settings.keypairs_in,
            settings.kube_timeout_seconds,
            settings.kube_concurrency,
        )

    # -- Leases (a keypair's creates at its session limit, quota.py) ------------------
    @gated
    async def create_lease(self, lease: dict) -> dict:
        return await read_json(
            await self.coordination.create_namespaced_lease(
                self.namespace, lease, _request_timeout=self.timeout, _preload_content=False
            )
        )

    @gated
    async def get_lease(self, name: str) -> dict | None:
        try:
            return await read_json(
                await self.coordination.read_namespaced_lease(
                    name, self.namespace, _request_timeout=self.timeout, _preload_content=False
                )
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    @gated
    async def replace_lease(self, name: str, lease: dict) -> dict:
        return await read_json(
            await self.coordination.replace_namespaced_lease(
                name, self.namespace, lease, _request_timeout=self.timeout, _preload_content=False
            )
        )

    @gated
    async def delete_lease(self, name: str, uid: str, resource_version: str) -> None:
        await self.coordination.delete_namespaced_lease(
            name,
            self.namespace,
            body={"preconditions": {"uid": uid, "resourceVersion": resource_version}},
            _request_timeout=self.timeout,
        )

    # -- KernelSessions --------------------------------------------------------
    @property
    def list_sessions(self) -> functools.partial:
        return functools.partial(
            self.custom.list_namespaced_custom_object, r.GROUP, r.VERSION, self.namespace, r.PLURAL
        )

    @gated
    async def sessions_at(self, resource_version: str) -> list[dict]:
        """Every KernelSession as it was at ``resource_version`` exactly. Raises Gone."""
        try:
            response = await self.list_sessions(
                resource_version=resource_version,
                resource_version_match="Exact",
                _request_timeout=self.timeout * 2,
                _preload_content=False,
            )
            return await read_items(response)
        except ApiException as exc:
            if exc.status in (410, 400, 504):  # compacted, malformed, or "too large resource version"
                raise Gone(str(exc.reason)) from None
            raise

    @gated
    async def sessions_labelled(self, selector: str) -> list[dict]:
        return await read_items(
            await self.list_sessions(
                label_selector=selector, _request_timeout=self.timeout, _preload_content=False
            )
        )

    @gated
    async def create_session(self, manifest: dict) -> dict:
        for attempt in range(QUOTA_WAIT_ATTEMPTS):
            try:
                return await self.custom.create_namespaced_custom_object(
                    r.GROUP, r.VERSION, self.namespace, r.PLURAL, manifest, _request_timeout=self.timeout
                )
            except ApiException as exc:
                # A ResourceQuota made a moment ago refuses everything until it has counted.
                if (
                    exc.status != 403
                    or r.QUOTA_NOT_READY not in str(exc.body or "")
                    or attempt == QUOTA_WAIT_ATTEMPTS - 1
                ):
                    raise
            await asyncio.sleep(0.5)
        raise AssertionError("unreachable")

    @gated
    async def get_session(self, name: str) -> dict | None:
        try:
            return await self.custom.get_namespaced_custom_object(
                r.GROUP, r.VERSION, self.namespace, r.PLURAL, name, _request_timeout=self.timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    @gated
    async def patch_session(self, name: str, patch: dict) -> dict:
        return await self.custom.patch_namespaced_custom_object(
            r.GROUP,
            r.VERSION,
            self.namespace,
            r.PLURAL,
            name,
            patch,
            _content_type="application/merge-patch+json",
            _request_timeout=self.timeout,
        )

    @gated
    async def patch_session_status(self, name: str, status: dict, resource_version: str) -> dict:
        """Fails with 409 if the object moved on since ``resource_version``."""
        return await self.custom.patch_namespaced_custom_object_status(
            r.GROUP,
            r.VERSION,
            self.namespace,
            r.PLURAL,
            name,
            {"metadata": {"resourceVersion": resource_version}, "status": status},
            _content_type="application/merge-patch+json",
            _request_timeout=self.timeout,
        )

    @gated
    async def delete_session(self, name: str, uid: str) -> None:
        """Delete exactly the object with ``uid`` (not a newer one of the same name)."""
        try:
            await self.custom.delete_namespaced_custom_object(
                r.GROUP,
                r.VERSION,
                self.namespace,
                r.PLURAL,
                name,
                body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid)),
                _request_timeout=self.timeout,
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    # -- kernels ----------------------------------------------------------------
    @gated
    async def claim_labels(self, names: set[str]) -> dict[str, dict[str, str] | None]:
        return await claim_labels(self.core, self.namespace, names, _request_timeout=self.timeout)

    @gated
    async def pod_log(self, pod: str, container: str, limit_bytes: int) -> str:
        """The container's last ``LOG_TAIL_LINES`` lines, at most ``limit_bytes`` of them."""
        response = await self.core.read_namespaced_pod_log(
            pod,
            self.namespace,
            container=container,
            tail_lines=LOG_TAIL_LINES,
            limit_bytes=limit_bytes,
            _request_timeout=self.timeout,
            _preload_content=False,
        )
        return (await read_bytes(response)).decode("utf-8", "replace")

    # -- keypairs (Secrets) ----------------------------------------------------
    @property
    def list_keypairs(self) -> functools.partial:
        return functools.partial(self.core.list_namespaced_secret, self.keypair_namespace)

    @gated
    async def keypair_secrets(self) -> list[dict]:
        return await read_items(
            await self.list_keypairs(
                label_selector=kp.SELECTOR, _request_timeout=self.timeout, _preload_content=False
            )
        )

    @gated
    async def create_keypair_secret(self, secret: dict) -> None:
        await self.core.create_namespaced_secret(
            self.keypair_namespace, secret, _request_timeout=self.timeout
        )

    @gated
    async def patch_keypair_secret(self, name: str, patch: dict) -> None:
        await self.core.patch_namespaced_secret(
            name, self.keypair_namespace, patch, _request_timeout=self.timeout
        )
