"""Carrying out what the transitions decide, one session at a time.

Every change to a session's status goes through ``_write``: read the
resource, compute the next status with the pure functions of
``transitions``, and merge-patch it with the read resourceVersion, so a
concurrent writer (the API counting accesses) makes us recompute instead of
losing its update. A per-session lock keeps this process's own triggers
(Pod changes, kubelet Events, timers) from racing each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timezone

import kopf
from kubernetes_asyncio.client.exceptions import ApiException

from kubernel import resource as r
from kubernel.images import ImageNotAllowed, ResolvedImage
from kubernel.lifecycle import FAILURE_REASONS, Phase, Reason, Result
from kubernel.model import KernelSession, KernelSessionSpec, KernelSessionStatus
from kubernel.quantity import memory_kib

from . import pods as builders
from .facts import KernelFacts, kernel_facts
from .kube import Kube
from .settings import OperatorSettings
from .transitions import Ending, advance, begin_restart, overdue, result_for, terminate

log = logging.getLogger("kubernel.operator")
Key = tuple[str, str]


def now() -> datetime:
    return datetime.now(timezone.utc)


def _parse(body: dict) -> KernelSession:
    return KernelSession.model_validate({k: body[k] for k in ("spec", "status") if k in body})


def _event_reason(event: str) -> str:
    return "".join(p.capitalize() for p in event.split("_"))  # kernel_started -> KernelStarted


class Sessions:
    def __init__(self, kube: Kube, settings: OperatorSettings) -> None:
        self.kube = kube
        self.settings = settings
        self._locks: dict[Key, asyncio.Lock] = {}
        # What each Pod said when it last caused a reconcile (Pod uid -> facts).
        self._pod_facts: dict[str, KernelFacts] = {}

    def lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def forget(self, key: Key) -> None:
        self._locks.pop(key, None)

    # -- the one way status changes -------------------------------------------
    async def _write(self, key: Key, step: Callable[[dict, KernelSession], KernelSessionStatus | None]) -> dict | None:
        """Apply ``step`` to the fresh resource; retry on conflicts. Returns the written body."""
        namespace, name = key
        for _ in range(20):
            body = await self.kube.get_session(namespace, name)
            if body is None:
                return None
            session = _parse(body)
            old = session.status or KernelSessionStatus()
            new = step(body, session)
            if new is None or new == old:
                return body
            try:
                written = await self.kube.patch_session_status(
                    namespace, name, new.model_dump(mode="json", by_alias=True),
                    body["metadata"]["resourceVersion"])
            except ApiException as exc:
                if exc.status == 409:
                    continue
                raise
            self._announce(body, old, new)
            return written
        raise kopf.TemporaryError(f"status of {namespace}/{name} kept changing under us", delay=1)

    def _announce(self, body: dict, old: KernelSessionStatus, new: KernelSessionStatus) -> None:
        """Kubernetes Events on the KernelSession for what `kubectl describe` should tell."""
        for entry in new.lifecycle:
            if entry.seq > old.last_seq:
                text = entry.event + (f" ({entry.reason})" if entry.reason else "")
                if entry.event == "kernel_terminated":
                    text += f", result {entry.result}" + (f": {new.message}" if new.message else "")
                failed = entry.event == "kernel_terminated" and (
                    entry.result == Result.FAILURE or entry.reason in FAILURE_REASONS)
                log.info("%s/%s #%d %s", body["metadata"]["namespace"], body["metadata"]["name"], entry.seq, text)
                kopf.event(body, type="Warning" if failed else "Normal",
                           reason=_event_reason(entry.event), message=text)

    # -- start ---------------------------------------------------------------
    async def start(self, key: Key, body: dict) -> None:
        """Create what the session needs (idempotent: safe to repeat after a crash)."""
        namespace, name = key
        async with self.lock(key):
            spec = _parse(body).spec

            def initialise(_: dict, current: KernelSession) -> KernelSessionStatus:
                status = current.status or KernelSessionStatus()
                if status.created_at is not None:
                    return status
                return status.model_copy(update={
                    "created_at": now(), "observed_restart": current.spec.restart_count,
                    "memory_limit_kib": memory_kib(current.spec.resources.memory),
                })

            body = await self._write(key, initialise) or body
            status = _parse(body).status
            if status is None or status.phase in (Phase.TERMINATED, Phase.TERMINATING):
                return
            if spec.termination_requested:  # requested while we were away
                reason = Reason(spec.termination_requested)
                await self._end(key, Ending(reason, Result.UNDEFINED, f"terminated on request ({reason})"))
                return
            ending = await self._preflight(namespace, spec)
            if ending is not None:
                await self._end(key, ending)
                return
            await self._create_kernels(key, body, spec.model_copy(update={"restart_count": status.observed_restart}))
        await self.reconcile(key)

    async def _preflight(self, namespace: str, spec: KernelSessionSpec) -> Ending | None:
        missing = await self.kube.missing_claims(namespace, [m.name for m in spec.mounts])
        if missing:
            return Ending(Reason.VOLUME_NOT_FOUND, result_for(spec, success=False),
                          f"PersistentVolumeClaim {', '.join(missing)} not found in namespace {namespace}")
        return None

    def _image(self, spec: KernelSessionSpec) -> ResolvedImage:
        """The image to run: the pinned ``resolvedImage`` if set, else the table's. Raises ImageNotAllowed."""
        table = self.settings.images
        if not spec.resolved_image:
            return table.resolve(spec.image)
        alias = table.aliases.get(spec.image)
        return ResolvedImage(image=spec.resolved_image, command=(alias and alias.command) or table.default_command)

    async def _create_kernels(self, key: Key, owner: dict, spec: KernelSessionSpec) -> None:
        namespace, name = key
        try:
            image = self._image(spec)
        except ImageNotAllowed as exc:
            await self._end(key, Ending(Reason.FAILED_TO_CREATE, result_for(spec, success=False), str(exc)))
            return
        manifests = builders.build_pods(name, spec, image)
        service = builders.build_service(name, spec)
        if service is not None:
            manifests.insert(0, service)
        for manifest in manifests:
            kopf.adopt(manifest, owner=owner)
        try:
            await asyncio.gather(*(self.kube.create(namespace, m) for m in manifests))
        except ApiException as exc:
            if exc.status in (400, 403, 422):  # rejected for good (quota, admission, validation)
                await self._end(key, Ending(Reason.FAILED_TO_CREATE, Result.UNDEFINED,
                                            f"Pod creation rejected: {exc.reason}"))
                return
            raise

        names = [m["metadata"]["name"] for m in manifests if m["kind"] == "Pod"]
        await self._write(key, lambda _b, s: (s.status or KernelSessionStatus()).model_copy(update={"pods": names}))

    # -- follow --------------------------------------------------------------
    async def pod_changed(self, key: Key, event_type: str | None, pod: dict) -> None:
        """Reconcile for a Pod event, unless the Pod says nothing new since the last one.

        Most Pod updates (status timestamps, IPs, annotations) change none of the facts
        the lifecycle is derived from; skipping those reconciles (2-4 API calls each)
        was the operator's main load with 1,000 sessions (docs/performance.md).
        Events have triggers of their own, so the facts here leave them out.
        """
        uid = pod["metadata"].get("uid", "")
        facts = kernel_facts(pod)
        if event_type != "DELETED" and self._pod_facts.get(uid) == facts:
            return
        await self.reconcile(key)
        if event_type == "DELETED":
            self._pod_facts.pop(uid, None)
        else:
            self._pod_facts[uid] = facts  # only once reconciled: a failed one is retried next time

    async def reconcile(self, key: Key) -> None:
        """Bring the lifecycle log up to what the Pods and kubelet Events show."""
        namespace, name = key
        async with self.lock(key):
            body = await self.kube.get_session(namespace, name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return
            status = (body.get("status") or {})
            if status.get("phase") in (Phase.TERMINATED, Phase.TERMINATING) or not status.get("createdAt"):
                return
            generation = str(status.get("observedRestart", 0))
            pods = [p for p in await self.kube.list_pods(namespace, name)
                    if p["metadata"]["labels"].get(r.LABEL_RESTART) == generation]
            main = next((p for p in pods if p["metadata"]["labels"].get(r.LABEL_INDEX) == "0"), None)
            # The kubelet's Pulling/Pulled Events only matter until the session runs.
            needs_reasons = main is not None and status.get("phase") != Phase.RUNNING
            reasons = await self.kube.pod_event_reasons(namespace, main["metadata"]["name"]) if needs_reasons else set()
            kernels = [kernel_facts(p, reasons if p is main else ()) for p in pods]
            present = {p["metadata"]["name"] for p in pods}
            missing = [n for n in status.get("pods", []) if n not in present]

            def step(_: dict, session: KernelSession) -> KernelSessionStatus:
                current = session.status or KernelSessionStatus()
                moment = now()
                new = advance(current, session.spec, kernels, missing, moment)
                due = overdue(session.spec, new, kernels, moment,
                              idle_timeout=self.settings.idle_timeout_seconds,
                              start_deadline=self.settings.start_deadline_seconds)
                return terminate(new, due, moment) if due else new

            written = await self._write(key, step)
        if written and (written.get("status") or {}).get("phase") == Phase.TERMINATED:
            await self._remove_kernels(key)

    # -- restart -------------------------------------------------------------
    async def restart(self, key: Key) -> None:
        namespace, name = key
        async with self.lock(key):
            began = False

            def step(_: dict, session: KernelSession) -> KernelSessionStatus | None:
                nonlocal began
                status = session.status or KernelSessionStatus()
                if status.phase in (Phase.TERMINATED, Phase.TERMINATING) or \
                        status.observed_restart >= session.spec.restart_count:
                    return None
                began = True
                return begin_restart(status, session.spec, now())

            body = await self._write(key, step)
            if body is None or not began:
                return
            await self.kube.delete_pods(
                namespace, f"{r.LABEL_SESSION}={name},{r.LABEL_RESTART}!={body['spec'].get('restartCount', 0)}",
                self.settings.pod_grace_seconds)
            kopf.info(body, reason="Restarting", message=f"restart {body['spec'].get('restartCount')} requested")
            await self._create_kernels(key, body, _parse(body).spec)
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
        """Timer: deadlines of a live session, retention of an ended one.

        Cheap on purpose (it runs for every session every interval): the idle
        check needs only the status kopf already holds; Pods are read only
        while a session is still waiting to be scheduled.
        """
        namespace, name = key
        status = body.get("status") or {}
        phase = status.get("phase")
        if phase == Phase.TERMINATED:
            ended = datetime.fromisoformat(status["terminatedAt"])
            if (now() - ended).total_seconds() > self.settings.terminated_retention_seconds:
                await self.kube.delete_session(namespace, name)
            return
        if phase in (Phase.PENDING, Phase.RESTARTING) and status.get("createdAt"):
            await self.reconcile(key)  # the start deadline needs the Pods' scheduling state
            return
        session = _parse(body)
        if session.status and overdue(session.spec, session.status, [], now(),
                                      idle_timeout=self.settings.idle_timeout_seconds,
                                      start_deadline=self.settings.start_deadline_seconds):
            await self.reconcile(key)

    async def finalize(self, key: Key, body: dict) -> None:
        """The KernelSession is being deleted: end it (once), then make sure its Pods go."""
        namespace, name = key
        annotations = body["metadata"].get("annotations") or {}
        reason = Reason(annotations.get(r.ANNOTATION_TERMINATION_REASON, Reason.USER_REQUESTED))
        async with self.lock(key):
            await self._write(key, lambda _b, s: terminate(
                s.status or KernelSessionStatus(), Ending(reason, Result.UNDEFINED, f"deleted ({reason})"), now()))
            await self._remove_kernels(key)
            remaining = await self.kube.list_pods(namespace, name)
        if remaining:
            raise kopf.TemporaryError(f"waiting for {len(remaining)} Pod(s) to stop", delay=0.5)
        self.forget(key)
