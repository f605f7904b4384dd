"""What no event triggers: deadlines (start, idle, retention) and retries of failed
actions, from one schedule (``schedule.py``) instead of a timer per session; and the
finalizer (a deleted KernelSession's Pods go before it does)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

import kopf

from kubernel import resource as r
from kubernel.jsondict import JsonDict
from kubernel.lifecycle import Phase, Reason

from .schedule import Schedule
from .sessions import Sessions
from .store import Key, now, parse_session
from .transitions import next_deadline, overdue, retry_delay

log = logging.getLogger("kubernel.operator")
STARTING = (Phase.PENDING, Phase.RESTARTING, Phase.PREPARING, Phase.PULLING, Phase.CREATING)
SOON = timedelta(seconds=1)  # a deadline that came and found nothing due yet is looked at again


class Upkeep:
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self.schedule = Schedule()
        self.failures: dict[Key, int] = {}

    async def guarded(self, key: Key, action: Awaitable[None], *, rearm: bool = True) -> None:
        """Run a session's action; on failure retry it with backoff (kopf does not retry
        event handlers), on success arm the session's next deadline (``rearm``: the
        KernelSession's own events and deadlines; a Pod's event moves no deadline, and
        what it makes us write comes back as a KernelSession event)."""
        try:
            await action
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is retried, with backoff
            failures = self.failures[key] = self.failures.get(key, 0) + 1
            delay = retry_delay(failures)
            log.warning("%s/%s: %s; retrying in %.0fs (failure %d)", *key, exc, delay, failures)
            self.schedule.arm(key, datetime.now(UTC) + timedelta(seconds=delay))
            return
        if self.failures.pop(key, None) is not None or rearm:
            self.rearm(key)

    def rearm(self, key: Key) -> None:
        body = self.sessions.store.latest(key)
        if body is None:
            self.forget(key)
            return
        session = parse_session(body)
        settings = self.sessions.settings
        when = (
            next_deadline(
                session.spec,
                session.status,
                idle_timeout=settings.idle_timeout_seconds,
                start_deadline=settings.start_deadline_seconds,
                batch_timeout=settings.batch_timeout_seconds,
                retention=settings.terminated_retention_seconds,
            )
            if session.status is not None
            else None
        )
        moment = datetime.now(UTC)
        if when is not None and when <= moment:  # came and found nothing due yet: look again soon
            when = moment + SOON
        self.schedule.arm(key, when)

    def forget(self, key: Key) -> None:
        self.schedule.disarm(key)
        self.failures.pop(key, None)

    async def fire(self, key: Key) -> None:
        body = self.sessions.store.latest(key)
        if body is None:
            self.forget(key)
            return
        await self.guarded(key, tick(self.sessions, key, body))

    async def run(self) -> None:
        await self.schedule.run(self.fire)


async def tick(sessions: Sessions, key: Key, body: JsonDict) -> None:
    """A session's deadline or retry came: do what an event should have done
    (``ensure``), end a live session whose deadline passed, delete an ended one whose
    retention passed (and remove its Pods, should their removal have failed)."""
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
    if phase in STARTING and status.get("createdAt"):
        await sessions.reconcile(key)  # the start deadline needs the Pods' facts
        return
    session = parse_session(body)
    if session.status and overdue(
        session.spec,
        session.status,
        [],
        now(),
        idle_timeout=settings.idle_timeout_seconds,
        start_deadline=settings.start_deadline_seconds,
        batch_timeout=settings.batch_timeout_seconds,
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
