"""What no event triggers: the timer (a retry of a missed or failed action, deadlines,
retention) and the finalizer (a deleted KernelSession's Pods go before it does)."""

from __future__ import annotations

from datetime import datetime

import kopf

from kubernel import resource as r
from kubernel.jsondict import JsonDict
from kubernel.lifecycle import Phase, Reason

from .sessions import Sessions
from .store import Key, now, parse_session
from .transitions import overdue


async def tick(sessions: Sessions, key: Key, body: JsonDict) -> None:
    """Timer: the retry of what an event should have done (``ensure``), deadlines of a
    live session, retention of an ended one (and its Pods, should their removal have
    failed).

    Cheap on purpose (it runs for every session every interval): the checks need only
    the latest copy of the session and the Pod watch's memory; the API server is called
    only when something is due.
    """
    namespace, name = key
    settings = sessions.settings
    if await sessions.ensure(key, body):  # an event's action failed, or an event was missed
        return
    body = sessions.store.latest(key) or body
    status = body.get("status") or {}
    phase = status.get("phase")
    if phase == Phase.TERMINATED:
        ended = datetime.fromisoformat(status["terminatedAt"])
        if (now() - ended).total_seconds() > settings.terminated_retention_seconds:
            await sessions.kube.delete_session(namespace, name)
        elif sessions.observed.running_pods(key):  # the removal at the end failed
            await sessions.kernels.remove(key)
        return
    if phase in (Phase.PENDING, Phase.RESTARTING) and status.get("createdAt"):
        await sessions.reconcile(key)  # the start deadline needs the Pods' scheduling state
        return
    session = parse_session(body)
    if session.status and overdue(
        session.spec,
        session.status,
        [],
        now(),
        idle_timeout=settings.idle_timeout_seconds,
        start_deadline=settings.start_deadline_seconds,
    ):
        await sessions.reconcile(key)


async def finalize(sessions: Sessions, key: Key, body: JsonDict) -> None:
    """The KernelSession is being deleted: end it (once), then make sure its Pods go."""
    annotations = body["metadata"].get("annotations") or {}
    reason = Reason(annotations.get(r.ANNOTATION_TERMINATION_REASON, Reason.USER_REQUESTED))
    remaining = await sessions.end_on_delete(key, reason)
    if remaining:
        raise kopf.TemporaryError(f"waiting for {remaining} Pod(s) to stop", delay=0.5)
    sessions.forget(key)
