"""The sessions as this process last saw them, and the one way their status changes.

Every change to a session's status goes through ``StatusStore.write``: take the
resource as last seen (the KernelSession watch, our own last write), compute the
next status with a pure step (``transitions``), and merge-patch it with that
resourceVersion, so a concurrent writer (the API counting accesses) or a stale copy
makes us read afresh and recompute instead of losing an update. A per-session lock
keeps this process's own triggers (Pod changes, kubelet Events, timers) from racing
each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import kopf
from kubernetes_asyncio.client.exceptions import ApiException

from kubernel.jsondict import JsonDict
from kubernel.lifecycle import Phase
from kubernel.model import KernelSession, KernelSessionStatus

from .kube import Kube

Key = tuple[str, str]
Step = Callable[[JsonDict, KernelSession], KernelSessionStatus | None]
Announce = Callable[[JsonDict, KernelSessionStatus, KernelSessionStatus], None]


def now() -> datetime:
    return datetime.now(UTC)


def parse_session(body: JsonDict) -> KernelSession:
    return KernelSession.model_validate({k: body[k] for k in ("spec", "status") if k in body})


def slim(body: JsonDict) -> JsonDict:
    """What a write and an announcement need of a KernelSession (not managedFields,
    not kopf's copy of the spec): kept per session, so it is kept small."""
    meta = body["metadata"]
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp", "deletionTimestamp")
            if k in meta
        },
        **{k: body[k] for k in ("spec", "status") if k in body},
    }


def older(version: str, than: str) -> bool:
    return version.isdigit() and than.isdigit() and int(version) < int(than)


class StatusStore:
    """The latest copy of each session, its lock, and the status writer."""

    def __init__(self, kube: Kube, announce: Announce, on_conflict: Callable[[], None]) -> None:
        self.kube = kube
        self.announce = announce
        self.on_conflict = on_conflict
        self._locks: dict[Key, asyncio.Lock] = {}
        self._bodies: dict[Key, JsonDict] = {}  # the latest KernelSession seen, slimmed

    def lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def seen(self, key: Key, body: JsonDict | None) -> None:
        """The KernelSession as a watch event or a response showed it (None: deleted).

        Never goes back: the watch can deliver an older version after our own write's
        response. resourceVersions are compared as numbers where they are numbers
        (etcd's revisions, as the API's stream cursor also assumes); otherwise the
        latest arrival wins and a stale copy only costs a conflict and a read.
        """
        if body is None:
            self._bodies.pop(key, None)
            return
        known = self._bodies.get(key)
        if known is None or not older(
            body["metadata"].get("resourceVersion", ""), known["metadata"].get("resourceVersion", "")
        ):
            self._bodies[key] = slim(body)

    def latest(self, key: Key, body: JsonDict | None = None) -> JsonDict | None:
        """The newest copy of the session this process has (``body`` if it is newer)."""
        if body is not None:
            self.seen(key, body)
        return self._bodies.get(key)

    def phases(self) -> Iterator[str]:
        """The phase of each session held (for the sessions-by-phase gauge)."""
        for body in self._bodies.values():
            yield (body.get("status") or {}).get("phase") or Phase.PENDING

    def forget(self, key: Key) -> None:
        self._locks.pop(key, None)
        self._bodies.pop(key, None)

    async def write(self, key: Key, step: Step, body: JsonDict | None = None) -> JsonDict | None:
        """Apply ``step`` to the resource and patch the result, trying ``body`` (or the
        latest seen) first and reading afresh on a conflict. Returns the resource as
        written (or as read, when nothing changed); None if it is gone."""
        namespace, name = key
        body = body or self._bodies.get(key)
        for _ in range(20):
            if body is None:
                body = await self.kube.get_session(namespace, name)
                if body is None:
                    self.seen(key, None)
                    return None
            session = parse_session(body)
            old = session.status or KernelSessionStatus()
            new = step(body, session)
            if new is None or new == old:
                return body
            try:
                written = await self.kube.patch_session_status(
                    namespace,
                    name,
                    new.model_dump(mode="json", by_alias=True),
                    body["metadata"]["resourceVersion"],
                )
            except ApiException as exc:
                if exc.status == 409:  # moved on since that copy: read it afresh
                    self.on_conflict()
                    body = None
                    continue
                if exc.status == 404:
                    self.seen(key, None)
                    return None
                raise
            self.seen(key, written)
            self.announce(body, old, new)
            return written
        raise kopf.TemporaryError(f"status of {namespace}/{name} kept changing under us", delay=1)
