"""Carrying out what the transitions decide, one session at a time.

Every change to a session's status goes through ``_write``: take the
resource as last seen (the KernelSession watch, our own last write), compute
the next status with the pure functions of ``transitions``, and merge-patch it
with that resourceVersion, so a concurrent writer (the API counting accesses)
or a stale copy makes us read afresh and recompute instead of losing an
update. A per-session lock keeps this process's own triggers (Pod changes,
kubelet Events, timers) from racing each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import kopf
from kubernetes_asyncio.client.exceptions import ApiException

from kubernel import resource as r
from kubernel import runner as rn
from kubernel.images import ImageNotAllowed, ResolvedImage
from kubernel.lifecycle import FAILURE_REASONS, LifecycleEvent, Phase, Reason, Result
from kubernel.model import KernelSession, KernelSessionSpec, KernelSessionStatus
from kubernel.quantity import memory_kib

from . import pods as builders
from .facts import KernelFacts, kernel_facts
from .kube import Kube
from .observed import Observed, with_reasons
from .settings import OperatorSettings
from .transitions import (
    Ending,
    Need,
    advance,
    begin_restart,
    enqueue,
    mounts_refused,
    need_of,
    overdue,
    result_for,
    terminate,
)

log = logging.getLogger("kubernel.operator")
Key = tuple[str, str]
MILESTONES = {LifecycleEvent.STARTED, LifecycleEvent.TERMINATED}  # posted as Kubernetes Events


def now() -> datetime:
    return datetime.now(UTC)


def _parse(body: dict) -> KernelSession:
    return KernelSession.model_validate({k: body[k] for k in ("spec", "status") if k in body})


def slim(body: dict) -> dict:
    """What a write and an announcement need of a KernelSession (not managedFields,
    not kopf's copy of the spec): kept per session, so it is kept small."""
    meta = body["metadata"]
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "deletionTimestamp")
            if k in meta
        },
        **{k: body[k] for k in ("spec", "status") if k in body},
    }


def _older(version: str, than: str) -> bool:
    return version.isdigit() and than.isdigit() and int(version) < int(than)


def _event_reason(event: str) -> str:
    return "".join(p.capitalize() for p in event.split("_"))  # kernel_started -> KernelStarted


@dataclass(frozen=True)
class Created:
    pods: list[str]
    fresh: bool  # every object was new (not there from an earlier attempt)


class Sessions:
    def __init__(self, kube: Kube, settings: OperatorSettings) -> None:
        self.kube = kube
        self.settings = settings
        self._locks: dict[Key, asyncio.Lock] = {}
        self._bodies: dict[Key, dict] = {}  # the latest KernelSession seen, slimmed
        self.observed = Observed()

    def lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def seen(self, key: Key, body: dict | None) -> None:
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
        if known is None or not _older(
            body["metadata"].get("resourceVersion", ""), known["metadata"].get("resourceVersion", "")
        ):
            self._bodies[key] = slim(body)

    def latest(self, key: Key, body: dict | None = None) -> dict | None:
        """The newest copy of the session this process has (``body`` if it is newer)."""
        if body is not None:
            self.seen(key, body)
        return self._bodies.get(key)

    def forget(self, key: Key) -> None:
        self._locks.pop(key, None)
        self._bodies.pop(key, None)
        self.observed.forget(key)

    # -- the one way status changes -------------------------------------------
    async def _write(
        self,
        key: Key,
        step: Callable[[dict, KernelSession], KernelSessionStatus | None],
        body: dict | None = None,
    ) -> dict | None:
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
            session = _parse(body)
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
                    body = None
                    continue
                if exc.status == 404:
                    self.seen(key, None)
                    return None
                raise
            self.seen(key, written)
            self._announce(body, old, new)
            return written
        raise kopf.TemporaryError(f"status of {namespace}/{name} kept changing under us", delay=1)

    def _announce(self, body: dict, old: KernelSessionStatus, new: KernelSessionStatus) -> None:
        """Log every new lifecycle entry; post a Kubernetes Event for the milestones
        `kubectl describe` should tell (started, terminated). The steps between are in
        the status's lifecycle log and the kernel Pod's own Events: an Event each cost
        the API server two requests per session (make bench, docs/performance.md)."""
        for entry in new.lifecycle:
            if entry.seq > old.last_seq:
                text = entry.event + (f" ({entry.reason})" if entry.reason else "")
                if entry.event == LifecycleEvent.TERMINATED:
                    text += f", result {entry.result}" + (f": {new.message}" if new.message else "")
                failed = entry.event == LifecycleEvent.TERMINATED and (
                    entry.result == Result.FAILURE or entry.reason in FAILURE_REASONS
                )
                log.info(
                    "%s/%s #%d %s", body["metadata"]["namespace"], body["metadata"]["name"], entry.seq, text
                )
                if entry.event in MILESTONES:
                    kopf.event(
                        body,
                        type="Warning" if failed else "Normal",
                        reason=_event_reason(entry.event),
                        message=text,
                    )

    # -- start ---------------------------------------------------------------
    async def observe(self, key: Key, event_type: str | None, body: dict) -> None:
        """A KernelSession watch event: do what its state needs. The initial listing
        (type None, after a restart of ours) also reconciles, as the Pods may have
        moved on while no operator watched."""
        if event_type == "DELETED":
            self.forget(key)
            return
        acted = await self.ensure(key, body)
        if not acted and event_type is None:
            await self.reconcile(key)

    async def ensure(self, key: Key, body: dict | None = None) -> bool:
        """Start, end or restart the session if its state asks for it; True if it did."""
        latest = self.latest(key, body)
        if latest is None:
            return False
        need = need_of(latest)
        if need == Need.START:
            await self.start(key)
        elif need == Need.END:
            reason = Reason(latest["spec"]["terminationRequested"])
            await self.end_on_request(key, reason)
        elif need == Need.RESTART:
            await self.restart(key)
        return need != Need.NOTHING

    async def start(self, key: Key) -> None:
        """Create what the session needs (idempotent: safe to repeat after a crash).

        The Pods are created first and then recorded, with the start time, in one status
        write: a recorded Pod that does not exist would read as deleted. A fresh start
        needs no reconcile of its own (the Pod watch brings one); a repeated one does,
        since the Pods' events may have come while the status did not yet record them.
        """
        namespace, _ = key
        async with self.lock(key):
            body = self.latest(key)
            if body is None or need_of(body) != Need.START:  # another trigger was first
                return
            spec = _parse(body).spec
            ending = await self._preflight(namespace, spec)
            if ending is not None:
                await self._end(key, ending)
                return
            generation = spec.restart_count  # the Pods' restart generation, recorded with them
            created = await self._create_kernels(key, body, spec)
            if created is None:
                return

            def record(_: dict, current: KernelSession) -> KernelSessionStatus | None:
                status = current.status or KernelSessionStatus()
                if status.created_at is not None:
                    return None
                # The conditions too, so the new Pod's first event finds nothing to write.
                moment = now()
                return advance(
                    enqueue(
                        status.model_copy(
                            update={
                                "created_at": moment,
                                "observed_restart": generation,
                                "pods": created.pods,
                                "memory_limit_kib": memory_kib(current.spec.resources.memory),
                            }
                        ),
                        moment,
                    ),
                    current.spec,
                    [],
                    [],
                    moment,
                )

            await self._write(key, record)
        if not created.fresh:
            await self.reconcile(key)

    async def _preflight(self, namespace: str, spec: KernelSessionSpec) -> Ending | None:
        """Checked again here, whoever made the KernelSession: each folder is the owner's."""
        claims = await self.kube.claim_labels(namespace, sorted({m.name for m in spec.mounts}))
        return mounts_refused(spec, claims, namespace)

    def _image(self, spec: KernelSessionSpec) -> ResolvedImage:
        """The image to run: the pinned ``resolvedImage`` if set, else the table's. Raises ImageNotAllowed."""
        table = self.settings.images
        if not spec.resolved_image:
            return table.resolve(spec.image)
        return table.pinned(spec.image, spec.resolved_image)

    async def _create_kernels(self, key: Key, owner: dict, spec: KernelSessionSpec) -> Created | None:
        """Create the Pods (and Service) of ``spec.restartCount``; None if the session ended instead."""
        namespace, name = key
        try:
            image = self._image(spec)
        except ImageNotAllowed as exc:
            await self._end(key, Ending(Reason.FAILED_TO_CREATE, result_for(spec, success=False), str(exc)))
            return None
        manifests = builders.build_pods(name, spec, image)
        service = builders.build_service(name, spec)
        if service is not None:
            manifests.insert(0, service)
        owner_body = kopf.Body(cast(kopf.RawBody, owner))
        for manifest in manifests:
            kopf.adopt(manifest, owner=owner_body)
        try:
            if builders.runs_runner(
                spec, image
            ):  # before the Pods, which mount it (its token: the session's uid's)
                secret = builders.build_runner_secret(
                    name, spec, rn.token(self.settings.runner_key, namespace, name, owner["metadata"]["uid"])
                )
                kopf.adopt(secret, owner=owner_body)
                await self.kube.create(namespace, secret)
            fresh = await asyncio.gather(*(self.kube.create(namespace, m) for m in manifests))
        except ApiException as exc:
            if exc.status in (400, 403, 422):  # rejected for good (quota, admission, validation)
                await self._end(
                    key,
                    Ending(Reason.FAILED_TO_CREATE, Result.UNDEFINED, f"Pod creation rejected: {exc.reason}"),
                )
                return None
            raise
        return Created(
            pods=[m["metadata"]["name"] for m in manifests if m["kind"] == "Pod"], fresh=all(fresh)
        )

    # -- follow --------------------------------------------------------------
    async def pod_changed(self, key: Key, event_type: str | None, pod: dict) -> None:
        """Reconcile for a Pod event, unless the Pod says nothing new since the last one.

        Most Pod updates (status timestamps, IPs, annotations) change none of the facts
        the lifecycle is derived from; skipping those reconciles was the operator's main
        load with 1,000 sessions (docs/performance.md).
        """
        latest = self.latest(key)
        if latest is not None and r.owner_uid(pod) not in (None, latest["metadata"]["uid"]):
            return  # a Pod of an earlier session of this name: a name is not an owner
        if self.observed.pod_event(key, event_type, pod):
            await self.reconcile(key)

    async def kubelet_event(self, key: Key, pod: str, reason: str, problem: str | None = None) -> None:
        if problem is not None:
            self.observed.start_problem(key, pod, problem)  # read at the start deadline
        elif self.observed.reason_event(key, pod, reason):
            await self.reconcile(key)

    async def _kernels(self, key: Key, status: dict) -> list[KernelFacts]:
        """The facts of the current Pods: as the watches showed them, or, where they have
        not shown everything yet, as the API server lists them."""
        namespace, name = key
        restart = str(status.get("observedRestart", 0))
        kernels = self.observed.kernels(key, restart, status.get("pods") or [])
        if kernels is None:
            uid = (self.latest(key) or {}).get("metadata", {}).get("uid")
            pods = [
                p
                for p in await self.kube.list_pods(namespace, name)
                if p["metadata"]["labels"].get(r.LABEL_RESTART) == restart and r.owner_uid(p) in (None, uid)
            ]
            kernels = [kernel_facts(p, self.observed.reasons(key, p["metadata"]["name"])) for p in pods]
        main = next((k for k in kernels if k.index == 0), None)
        # A Pod that ran before its Pulled Event reached us: ask whether a pull happened.
        # The Events only matter until the session runs.
        if main is not None and main.ran and not main.pulled and status.get("phase") != Phase.RUNNING:
            reasons = await self.kube.pod_event_reasons(namespace, main.name)
            kernels = [with_reasons(k, reasons) if k is main else k for k in kernels]
        return kernels

    async def reconcile(self, key: Key) -> None:
        """Bring the lifecycle log up to what the Pods and kubelet Events show."""
        namespace, name = key
        async with self.lock(key):
            body = self._bodies.get(key)
            if body is None or not (body.get("status") or {}).get("createdAt"):
                body = await self.kube.get_session(namespace, name)  # a copy may lag behind our own write
                self.seen(key, body)
            if body is None:
                self.forget(key)  # gone: a late Pod event must not keep its memory alive
                return
            if body["metadata"].get("deletionTimestamp"):
                return
            status = body.get("status") or {}
            if status.get("phase") in (Phase.TERMINATED, Phase.TERMINATING) or not status.get("createdAt"):
                return
            kernels = await self._kernels(key, status)
            present = {k.name for k in kernels}
            missing = [n for n in status.get("pods", []) if n not in present]

            def step(_: dict, session: KernelSession) -> KernelSessionStatus:
                current = session.status or KernelSessionStatus()
                moment = now()
                new = advance(current, session.spec, kernels, missing, moment)
                due = overdue(
                    session.spec,
                    new,
                    kernels,
                    moment,
                    idle_timeout=self.settings.idle_timeout_seconds,
                    start_deadline=self.settings.start_deadline_seconds,
                )
                return terminate(new, due, moment) if due else new

            written = await self._write(key, step, body)
            self.observed.reconciled(key, kernels)
        if written and (written.get("status") or {}).get("phase") == Phase.TERMINATED:
            await self._remove_kernels(key)

    # -- restart -------------------------------------------------------------
    async def restart(self, key: Key) -> None:
        """Replace the Pods with a new generation: recorded first (RESTARTING, no Pods),
        so an interrupted restart is picked up again by the next event or tick."""
        namespace, name = key
        async with self.lock(key):
            go = False

            def step(current: dict, session: KernelSession) -> KernelSessionStatus | None:
                nonlocal go
                status = session.status or KernelSessionStatus()
                if need_of(current) != Need.RESTART:
                    return None
                go = True
                if status.observed_restart < session.spec.restart_count:
                    return begin_restart(status, session.spec, now())
                return None  # begun before, the Pods not yet created

            body = await self._write(key, step)
            if body is None or not go:
                return
            generation = (body.get("status") or {}).get("observedRestart", 0)
            await self.kube.delete_pods(
                namespace,
                f"{r.LABEL_SESSION}={name},{r.LABEL_RESTART}!={generation}",
                self.settings.pod_grace_seconds,
            )
            kopf.info(body, reason="Restarting", message=f"restart {generation} requested")
            spec = _parse(body).spec.model_copy(update={"restart_count": generation})
            created = await self._create_kernels(key, body, spec)
            if created is not None:
                await self._write(
                    key,
                    lambda _b, s: (s.status or KernelSessionStatus()).model_copy(
                        update={"pods": created.pods}
                    ),
                )
        await self.reconcile(key)

    # -- end -----------------------------------------------------------------
    async def _end(self, key: Key, ending: Ending) -> None:
        await self._write(key, lambda _b, s: terminate(s.status or KernelSessionStatus(), ending, now()))
        await self._remove_kernels(key)

    async def end_on_request(self, key: Key, reason: Reason) -> None:
        """spec.terminationRequested was set (DELETE /kernel/:id): end, keep the resource."""
        async with self.lock(key):
            await self._end(key, Ending(reason, Result.UNDEFINED, f"terminated on request ({reason})"))

    async def _remove_kernels(self, key: Key) -> None:
        namespace, name = key
        await self.kube.delete_pods(namespace, f"{r.LABEL_SESSION}={name}", self.settings.pod_grace_seconds)
        await self.kube.delete_service(namespace, name)

    async def tick(self, key: Key, body: dict) -> None:
        """Timer: the retry of what an event should have done (``ensure``), deadlines of
        a live session, retention of an ended one (and its Pods, should their removal
        have failed).

        Cheap on purpose (it runs for every session every interval): the checks need
        only the latest copy of the session and the Pod watch's memory; the API server
        is called only when something is due.
        """
        namespace, name = key
        if await self.ensure(key, body):  # an event's action failed, or an event was missed
            return
        body = self.latest(key) or body
        status = body.get("status") or {}
        phase = status.get("phase")
        if phase == Phase.TERMINATED:
            ended = datetime.fromisoformat(status["terminatedAt"])
            if (now() - ended).total_seconds() > self.settings.terminated_retention_seconds:
                await self.kube.delete_session(namespace, name)
            elif self.observed.running_pods(key):  # the removal at the end failed
                await self._remove_kernels(key)
            return
        if phase in (Phase.PENDING, Phase.RESTARTING) and status.get("createdAt"):
            await self.reconcile(key)  # the start deadline needs the Pods' scheduling state
            return
        session = _parse(body)
        if session.status and overdue(
            session.spec,
            session.status,
            [],
            now(),
            idle_timeout=self.settings.idle_timeout_seconds,
            start_deadline=self.settings.start_deadline_seconds,
        ):
            await self.reconcile(key)

    async def finalize(self, key: Key, body: dict) -> None:
        """The KernelSession is being deleted: end it (once), then make sure its Pods go."""
        namespace, name = key
        annotations = body["metadata"].get("annotations") or {}
        reason = Reason(annotations.get(r.ANNOTATION_TERMINATION_REASON, Reason.USER_REQUESTED))
        async with self.lock(key):
            await self._write(
                key,
                lambda _b, s: terminate(
                    s.status or KernelSessionStatus(),
                    Ending(reason, Result.UNDEFINED, f"deleted ({reason})"),
                    now(),
                ),
            )
            await self._remove_kernels(key)
            remaining = await self.kube.list_pods(namespace, name)
        if remaining:
            raise kopf.TemporaryError(f"waiting for {len(remaining)} Pod(s) to stop", delay=0.5)
        self.forget(key)
