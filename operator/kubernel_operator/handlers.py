"""kopf handlers: thin triggers into ``Sessions``.

Settings chosen on purpose (see docs/operator.md):
- level-triggered: KernelSession events (and the deadline schedule) ask what the state needs,
  so there is no diff base; the finalizer's progress lives in annotations, never
  in status, so the status schema stays ours;
- only the explicit ``kopf.event``/``kopf.info`` calls post Kubernetes Events (kopf's
  default: it does not post its log lines);
- Pods are watched with a server-side label selector, so other workloads' Pods never
  reach this process; Events with a field selector (involvedObject.kind=Pod), and of
  those only our Pods' (by name) with the Pulling/Pulled reasons, or the start problems
  (FailedCreatePodSandBox, FailedMount, FailedAttachVolume) with their message, are kept;
- watch streams end server-side after 5 minutes and are re-listed, and a
  stream silent for longer than the inactivity timeout is considered dead;
- kopf's batch window is ours (`KUBERNEL_EVENT_BATCH`, 10 ms, not kopf's 100 ms): each
  reaction waits that long for more events of its object.

The handlers are registered by ``register`` with the settings read at start-up, not by
decorators at import time. There is no kopf timer: deadlines and retries live in one
schedule (``upkeep.py``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import kopf

from kubernel import resource as r
from kubernel.client.connect import connect
from kubernel.metrics import serve_metrics

from . import upkeep
from .kube import Kube
from .metrics import OperatorMetrics
from .sessions import Sessions
from .settings import OperatorSettings

KS = (r.GROUP, r.VERSION, r.PLURAL)
KP = (r.GROUP, r.VERSION, r.POOL_PLURAL)
POD_NAME = re.compile(r"^(?P<session>.+)-r\d+-\d+$")
LIFECYCLE_EVENT_REASONS = {"Pulling", "Pulled"}
# Warnings that keep a scheduled kernel from starting; their words end the session at
# the start deadline (a sandbox containerd cannot create, a volume that does not mount).
START_PROBLEM_REASONS = {"FailedCreatePodSandBox", "FailedMount", "FailedAttachVolume"}


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: our handlers are level-triggered (``on.event``, the schedule) and the
    finalizer's needs none, so kopf need not copy each body to compare it (a tenth of
    the operator's CPU in the make bench profile) nor patch it into our objects."""

    def build(self, *, body: kopf.Body, extra_fields: object = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


Logger = logging.Logger | logging.LoggerAdapter[Any]


def _key(namespace: str | None, name: str) -> tuple[str, str]:
    if namespace is None:  # KernelSessions, Pods and Events are namespaced
        raise kopf.PermanentError(f"{name} has no namespace")
    return namespace, name


def register(registry: kopf.OperatorRegistry, ours: OperatorSettings) -> None:
    """Register the operator's handlers in ``registry``, configured by ``ours``. Each has
    an explicit id: the finalizer's progress is kept in annotations under it."""

    @kopf.on.startup(id="configure", registry=registry, errors=kopf.ErrorsMode.PERMANENT)
    async def configure(settings: kopf.OperatorSettings, memo: Any, logger: Logger, **_: Any) -> None:
        settings.persistence.finalizer = r.FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=f"kopf.{r.GROUP}")
        settings.persistence.diffbase_storage = NoDiffBase()
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.watching.inactivity_timeout = 120
        settings.batching.batch_window = ours.event_batch_seconds
        settings.watching.label_selectors["v1", "pods"] = f"{r.LABEL_MANAGED_BY}={r.MANAGED_BY}"
        settings.watching.field_selectors["v1", "events"] = "involvedObject.kind=Pod"
        settings.scanning.disabled = not ours.scans_cluster
        metrics = OperatorMetrics()
        memo.sessions = Sessions(Kube(await connect()), ours, metrics)
        memo.upkeep = upkeep.Upkeep(memo.sessions)
        metrics.count_scheduled(lambda: len(memo.upkeep.schedule))
        memo.schedule_task = None  # started by the first session event (see session_event)
        memo.metrics_server = None
        if ours.metrics_port:
            memo.metrics_server = await serve_metrics(metrics.registry, ours.health_host, ours.metrics_port)
        logger.info(
            "kubernel operator: namespaces=%s idle=%ss start-deadline=%ss",
            ",".join(ours.namespaces) or "*",
            ours.idle_timeout_seconds,
            ours.start_deadline_seconds,
        )

    @kopf.on.cleanup(id="close", registry=registry)
    async def close(memo: Any, **_: Any) -> None:
        if memo.schedule_task is not None:
            memo.schedule_task.cancel()
        if memo.metrics_server is not None:
            await memo.metrics_server.cleanup()
        await memo.sessions.pools.close()
        await memo.sessions.kube.api.close()

    # Level-triggered: every event of a KernelSession asks what its state needs (start,
    # end, restart; see transitions.need_of), so kopf keeps no diff base and writes no
    # annotations to our objects; a failed action is retried by the schedule, with backoff.
    @kopf.on.event(*KS, id="session_event", registry=registry)
    async def session_event(
        type: str | None, body: kopf.Body, name: str, namespace: str | None, memo: Any, **_: Any
    ) -> None:
        if memo.schedule_task is None:
            # Started from a handler, so that it inherits kopf's context: what a deadline
            # ends is announced with kopf.event, which needs kopf's event queue (the
            # startup handler's context has none).
            memo.schedule_task = asyncio.create_task(memo.upkeep.run(), name="deadlines")
        key = _key(namespace, name)
        if type == "DELETED":
            memo.upkeep.forget(key)
        await memo.upkeep.guarded(key, memo.sessions.observe(key, type, dict(body)))

    @kopf.on.delete(*KS, id="finalize", registry=registry)
    async def finalize(body: kopf.Body, name: str, namespace: str | None, memo: Any, **_: Any) -> None:
        await upkeep.finalize(memo.sessions, _key(namespace, name), dict(body))
        memo.upkeep.forget(_key(namespace, name))

    @kopf.on.event(
        "v1", "pods", id="pod_changed", registry=registry, labels={r.LABEL_MANAGED_BY: r.MANAGED_BY}
    )
    async def pod_changed(
        type: str | None, body: kopf.Body, labels: kopf.Labels, namespace: str | None, memo: Any, **_: Any
    ) -> None:
        memo.sessions.pools.pod_event(namespace or "", type, dict(body))
        session = labels.get(r.LABEL_SESSION)
        # The initial listing (type None) counts too: the Pod watch may start after the
        # session listing's reconcile read the Pods, and a Pod that became Ready in between
        # sends no further event (found by the kill -9 fault test).
        if session:
            key = _key(namespace, session)
            await memo.upkeep.guarded(key, memo.sessions.pod_changed(key, type, dict(body)), rearm=False)

    @kopf.on.event(*KP, id="pool_event", registry=registry)
    async def pool_event(
        type: str | None, body: kopf.Body, name: str, namespace: str | None, memo: Any, **_: Any
    ) -> None:
        memo.sessions.pools.pool_event(_key(namespace, name), type, dict(body))

    @kopf.on.event("v1", "events", id="kubelet_event", registry=registry)
    async def kubelet_event(
        type: str | None, body: kopf.Body, namespace: str | None, memo: Any, **_: Any
    ) -> None:
        reason = body.get("reason")
        if (
            type not in (None, "ADDED", "MODIFIED")
            or reason not in LIFECYCLE_EVENT_REASONS | START_PROBLEM_REASONS
        ):
            return
        if type == "MODIFIED" and reason in LIFECYCLE_EVENT_REASONS:
            return  # a repeated Pulling/Pulled (count + 1) says nothing new
        pod = body.get("involvedObject", {}).get("name", "")
        match = POD_NAME.match(pod)
        if match:
            problem = f"{reason}: {body.get('message', '')}" if reason in START_PROBLEM_REASONS else None
            key = _key(namespace, match["session"])
            await memo.upkeep.guarded(
                key, memo.sessions.kubelet_event(key, pod, reason, problem), rearm=False
            )
