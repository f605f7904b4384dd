"""A keypair's creates at its ``concurrentSessions`` limit, one at a time across every
API replica: a coordination.k8s.io Lease per keypair, taken with optimistic
concurrency (create, or replace an expired one at its resourceVersion), held while
the live sessions are counted and the new one is created, then deleted.

Its pure part decides from a Lease and the clock; ``KeypairLock`` does the calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from kubernetes_asyncio.client.exceptions import ApiException

from kubernel import resource as r
from kubernel.jsondict import JsonDict

from .kube import Kube
from .problems import Problem, ProblemType

LEASE_SECONDS = 15  # a holder that dies frees its keypair's creates after this long
WAIT_SECONDS = 10.0  # the longest a create waits for another one of its keypair
HOLDER = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def lease_name(access_key: str) -> str:
    return "kubernel-quota-" + hashlib.sha256(access_key.encode()).hexdigest()[: r.DIGEST_HEX]


def lease_body(name: str, holder: str, now: datetime, resource_version: str | None = None) -> JsonDict:
    metadata: JsonDict = {"name": name, "labels": {r.LABEL_MANAGED_BY: r.MANAGED_BY}}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": LEASE_SECONDS,
            "acquireTime": stamp,
            "renewTime": stamp,
        },
    }


def expired(lease: JsonDict, now: datetime) -> bool:
    """Whether a Lease's holder has let it lapse (or it names none)."""
    spec = lease.get("spec") or {}
    renewed = spec.get("renewTime") or spec.get("acquireTime")
    if not spec.get("holderIdentity") or not renewed:
        return True
    since = datetime.fromisoformat(str(renewed).replace("Z", "+00:00"))
    return now - since > timedelta(seconds=int(spec.get("leaseDurationSeconds") or LEASE_SECONDS))


class KeypairLock:
    def __init__(self, kube: Kube, holder: str = HOLDER) -> None:
        self.kube = kube
        self.holder = holder

    @asynccontextmanager
    async def held(self, access_key: str) -> AsyncIterator[None]:
        name = lease_name(access_key)
        taken = await self._acquire(name)
        try:
            yield
        finally:
            await self._release(name, taken)

    async def _acquire(self, name: str) -> JsonDict:
        deadline = time.monotonic() + WAIT_SECONDS
        pause = 0.01
        while True:
            now = datetime.now(UTC)
            try:
                return await self.kube.create_lease(lease_body(name, self.holder, now))
            except ApiException as exc:
                if exc.status != 409:
                    raise
            current = await self.kube.get_lease(name)
            if current is not None and expired(current, now):
                try:  # take over a lapsed Lease, at the version we read
                    body = lease_body(name, self.holder, now, current["metadata"]["resourceVersion"])
                    return await self.kube.replace_lease(name, body)
                except ApiException as exc:
                    if exc.status not in (404, 409):
                        raise
            if time.monotonic() > deadline:
                raise Problem(ProblemType.UNAVAILABLE, "too many creates of this keypair at once; try again")
            await asyncio.sleep(pause)  # another replica creates for this keypair: wait our turn
            pause = min(0.2, pause * 2)

    async def _release(self, name: str, taken: JsonDict) -> None:
        meta = taken["metadata"]
        try:  # only the Lease we took: not one taken over after ours lapsed
            await self.kube.delete_lease(name, meta["uid"], meta["resourceVersion"])
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
