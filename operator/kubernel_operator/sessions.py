"""The use cases, one session at a time: start, follow (reconcile), restart and end.

Each decides with the pure functions of ``transitions`` and writes through the
``StatusStore``; ``Kernels`` does what happens to the Pods.
"""

from __future__ import annotations

from functools import partial

import kopf

from kubernel import resource as r
from kubernel.jsondict import JsonDict
from kubernel.lifecycle import Phase, Reason, Result
from kubernel.model import KernelSession, KernelSessionSpec, KernelSessionStatus
from kubernel.quantity import memory_kib

from .announce import announce, as_body
from .facts import kernel_facts
from .kernels import Created, Kernels
from .kube import Kube
from .metrics import OperatorMetrics
from .observed import Observed
from .pools import ColdStart
from .settings import OperatorSettings
from .store import Key, StatusStore, Step, now, parse_session
from .transitions import (
    Ending,
    Need,
    advance,
    begin_restart,
    enqueue,
    mounts_refused,
    need_of,
    overdue,
    terminate,
)
from .warm import Claimed, Pools


class Sessions:
    def __init__(self, kube: Kube, settings: OperatorSettings, metrics: OperatorMetrics) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        self.store = StatusStore(
            kube, partial(announce, metrics=metrics), on_conflict=metrics.status_conflicts.inc
        )
        self.observed = Observed()
        self.kernels = Kernels(kube, settings, self.observed, metrics.pod_creation_failures)
        self.pools = Pools(kube, settings, metrics)
        metrics.count_sessions(self.store.phases)

    def forget(self, key: Key) -> None:
        self.store.forget(key)
        self.observed.forget(key)
        self.kernels.failed_attempts.pop(key, None)

    # -- start ---------------------------------------------------------------
    async def observe(self, key: Key, event_type: str | None, body: JsonDict) -> None:
        """A KernelSession watch event: do what its state needs. The initial listing
        (type None, after a restart of ours) also reconciles, as the Pods may have
        moved on while no operator watched."""
        if event_type == "DELETED":
            self.forget(key)
            return
        acted = await self.ensure(key, body)
        if not acted and event_type is None:
            await self.reconcile(key)

    async def ensure(self, key: Key, body: JsonDict | None = None) -> bool:
        """Start, end or restart the session if its state asks for it; True if it did."""
        latest = self.store.latest(key, body)
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
        A warm pool's kernel, when one can serve the session, is claimed instead, and
        the session is recorded started in that same write (docs/pools.md).
        """
        namespace, _ = key
        async with self.store.lock(key):
            body = self.store.latest(key)
            if body is None or need_of(body) != Need.START:  # another trigger was first
                return
            spec = parse_session(body).spec
            ending = await self._preflight(namespace, spec)
            if ending is not None:
                await self._end(key, ending)
                return
            claim = await self.pools.claim(key, body, spec)
            if isinstance(claim, Claimed):
                await self._record_claim(key, claim)
                return
            generation = spec.restart_count  # the Pods' restart generation, recorded with them
            created = await self.kernels.create(key, body, spec)
            if isinstance(created, Ending):
                await self._end(key, created)
                return
            cold = claim.message if isinstance(claim, ColdStart) else ""
            await self.store.write(key, _record_start(created, generation, cold))
        if not created.fresh:
            await self.reconcile(key)

    async def _record_claim(self, key: Key, claim: Claimed) -> None:
        """Record the claimed kernel, started; if that cannot be written the kernel goes
        (the retried start claims another), so a session never holds two main kernels."""
        try:
            await self.store.write(key, _record_warm_start(claim))
        except BaseException:
            await self.kube.delete_pod(key[0], claim.pod["metadata"]["name"], 0)
            raise

    async def _preflight(self, namespace: str, spec: KernelSessionSpec) -> Ending | None:
        """Checked again here, whoever made the KernelSession: each folder is the owner's."""
        claims = await self.kube.claim_labels(namespace, sorted({m.name for m in spec.mounts}))
        return mounts_refused(spec, claims, namespace)

    # -- follow --------------------------------------------------------------
    async def pod_changed(self, key: Key, event_type: str | None, pod: JsonDict) -> None:
        """Reconcile for a Pod event, unless the Pod says nothing new since the last one.

        Most Pod updates (status timestamps, IPs, annotations) change none of the facts
        the lifecycle is derived from; skipping those reconciles was the operator's main
        load with 1,000 sessions (docs/performance.md).
        """
        latest = self.store.latest(key)
        if latest is not None and r.owner_uid(pod) not in (None, latest["metadata"]["uid"]):
            return  # a Pod of an earlier session of this name: a name is not an owner
        if self.observed.pod_event(key, event_type, pod):
            await self.reconcile(key)

    async def kubelet_event(self, key: Key, pod: str, reason: str, problem: str | None = None) -> None:
        if problem is not None:
            self.observed.start_problem(key, pod, problem)  # read at the start deadline
        elif self.observed.reason_event(key, pod, reason):
            await self.reconcile(key)

    async def reconcile(self, key: Key) -> None:
        """Bring the lifecycle log up to what the Pods and kubelet Events show."""
        with self.metrics.reconcile_duration.time():
            await self._reconcile(key)

    async def _reconcile(self, key: Key) -> None:
        namespace, name = key
        async with self.store.lock(key):
            body = self.store.latest(key)
            if body is None or not (body.get("status") or {}).get("createdAt"):
                body = await self.kube.get_session(namespace, name)  # a copy may lag behind our own write
                self.store.seen(key, body)
            if body is None:
                self.forget(key)  # gone: a late Pod event must not keep its memory alive
                return
            if body["metadata"].get("deletionTimestamp"):
                return
            status = body.get("status") or {}
            if status.get("phase") == Phase.TERMINATED or not status.get("createdAt"):
                return
            kernels = await self.kernels.facts(key, status, body["metadata"].get("uid"))
            present = {k.name for k in kernels}
            missing = [n for n in status.get("pods", []) if n not in present]

            def step(_: JsonDict, session: KernelSession) -> KernelSessionStatus:
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
                    batch_timeout=self.settings.batch_timeout_seconds,
                )
                return terminate(new, due, moment) if due else new

            written = await self.store.write(key, step, body)
            self.observed.reconciled(key, kernels)
        if written and (written.get("status") or {}).get("phase") == Phase.TERMINATED:
            await self.kernels.remove(key)

    # -- restart -------------------------------------------------------------
    async def restart(self, key: Key) -> None:
        """Replace the Pods with a new generation: recorded first (RESTARTING, no Pods),
        so an interrupted restart is picked up again by the next event or tick."""
        async with self.store.lock(key):
            go = False

            def step(current: JsonDict, session: KernelSession) -> KernelSessionStatus | None:
                nonlocal go
                status = session.status or KernelSessionStatus()
                if need_of(current) != Need.RESTART:
                    return None
                go = True
                if status.observed_restart < session.spec.restart_count:
                    return begin_restart(status, session.spec, now())
                return None  # begun before, the Pods not yet created

            body = await self.store.write(key, step)
            if body is None or not go:
                return
            generation = (body.get("status") or {}).get("observedRestart", 0)
            await self.kernels.remove(key, keep_generation=generation)
            kopf.info(as_body(body), reason="Restarting", message=f"restart {generation} requested")
            spec = parse_session(body).spec.model_copy(update={"restart_count": generation})
            created = await self.kernels.create(key, body, spec)
            if isinstance(created, Ending):
                await self._end(key, created)
            else:
                pods = created.pods
                await self.store.write(
                    key,
                    lambda _b, s: (s.status or KernelSessionStatus()).model_copy(update={"pods": pods}),
                )
        await self.reconcile(key)

    # -- end -----------------------------------------------------------------
    async def _end(self, key: Key, ending: Ending) -> None:
        await self.store.write(key, lambda _b, s: terminate(s.status or KernelSessionStatus(), ending, now()))
        await self.kernels.remove(key)

    async def end_on_request(self, key: Key, reason: Reason) -> None:
        """spec.terminationRequested was set (DELETE /kernel/:id): end, keep the resource."""
        async with self.store.lock(key):
            await self._end(key, Ending(reason, Result.UNDEFINED, f"terminated on request ({reason})"))

    async def end_on_delete(self, key: Key, reason: Reason) -> int:
        """The KernelSession is being deleted: end it (once) and remove its Pods; the
        number of its Pods still there."""
        namespace, name = key
        async with self.store.lock(key):
            await self._end(key, Ending(reason, Result.UNDEFINED, f"deleted ({reason})"))
            return len(await self.kube.list_pods(namespace, name))


def _record_start(created: Created, generation: int, cold_start_reason: str = "") -> Step:
    """The status step that records new Pods and the start time (once)."""

    def record(_: JsonDict, current: KernelSession) -> KernelSessionStatus | None:
        status = current.status or KernelSessionStatus()
        if status.created_at is not None:
            return None
        # The conditions too, so the new Pod's first event finds nothing to write.
        moment = now()
        recorded = status.model_copy(
            update={
                "created_at": moment,
                "observed_restart": generation,
                "pods": created.pods,
                "memory_limit_kib": memory_kib(current.spec.resources.memory),
                "cold_start_reason": cold_start_reason,
            }
        )
        return advance(enqueue(recorded, moment), current.spec, [], [], moment)

    return record


def _record_warm_start(claim: Claimed) -> Step:
    """The status step that records a claimed warm kernel: enqueued and started at once
    (its Pod is scheduled, its image present, its runner ready and bound)."""

    def record(_: JsonDict, current: KernelSession) -> KernelSessionStatus | None:
        status = current.status or KernelSessionStatus()
        if status.created_at is not None:
            return None
        moment = now()
        recorded = status.model_copy(
            update={
                "created_at": moment,
                "observed_restart": 0,
                "pods": [claim.pod["metadata"]["name"]],
                "memory_limit_kib": memory_kib(current.spec.resources.memory),
                "pool": claim.pool,
            }
        )
        kernel = kernel_facts(claim.pod, ["Pulled"])
        return advance(enqueue(recorded, moment), current.spec, [kernel], [], moment)

    return record
