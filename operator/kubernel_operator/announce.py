"""Telling what happened to a session: a log line per new lifecycle entry, and a
Kubernetes Event for the milestones ``kubectl describe`` should show (started,
terminated). The steps between are in the status's lifecycle log and the kernel Pod's
own Events: an Event each cost the API server two requests per session (make bench,
docs/performance.md)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import kopf

from kubernel.jsondict import JsonDict
from kubernel.lifecycle import FAILURE_REASONS, LifecycleEvent, Result
from kubernel.model import KernelSessionStatus

from .metrics import OperatorMetrics

log = logging.getLogger("kubernel.operator")
# Posted as Kubernetes Events; a wait for a node too, as a Warning with the scheduler's words.
MILESTONES = {LifecycleEvent.PENDING, LifecycleEvent.STARTED, LifecycleEvent.TERMINATED}


@dataclass(frozen=True)
class Announcement:
    seq: int
    text: str
    event_reason: str | None  # a Kubernetes Event's reason, for a milestone
    failed: bool


def event_reason(event: str) -> str:
    return "".join(p.capitalize() for p in event.split("_"))  # kernel_started -> KernelStarted


def announcements(old: KernelSessionStatus, new: KernelSessionStatus) -> list[Announcement]:
    """What to tell of the entries ``new`` adds to ``old`` (pure)."""
    told = []
    for entry in new.lifecycle:
        if entry.seq <= old.last_seq:
            continue
        text = entry.event + (f" ({entry.reason})" if entry.reason else "")
        if entry.event == LifecycleEvent.TERMINATED:
            text += f", result {entry.result}" + (f": {new.message}" if new.message else "")
        if entry.event == LifecycleEvent.PENDING and new.waiting:
            text += f": {new.waiting}"
        failed = entry.event == LifecycleEvent.PENDING or (
            entry.event == LifecycleEvent.TERMINATED
            and (entry.result == Result.FAILURE or entry.reason in FAILURE_REASONS)
        )
        milestone = event_reason(entry.event) if entry.event in MILESTONES else None
        told.append(Announcement(entry.seq, text, milestone, failed))
    return told


def as_body(body: JsonDict) -> kopf.Body:
    """A KernelSession as kopf's posting and adopting functions take it."""
    return kopf.Body(cast(kopf.RawBody, body))


def first_start_seconds(
    created: datetime | None, old: KernelSessionStatus, new: KernelSessionStatus
) -> float | None:
    """Seconds from the session's creation to the first kernel_started, if ``new`` adds it."""
    for entry in new.lifecycle:
        if entry.seq > old.last_seq and entry.event == LifecycleEvent.STARTED and entry.restart == 0:
            return max(0.0, (entry.time - created).total_seconds()) if created is not None else None
    return None


def announce(
    body: JsonDict, old: KernelSessionStatus, new: KernelSessionStatus, metrics: OperatorMetrics
) -> None:
    meta = body["metadata"]
    for entry in new.lifecycle:
        if entry.seq > old.last_seq:
            metrics.lifecycle_entries.labels(str(entry.event)).inc()
    created = meta.get("creationTimestamp")
    started = first_start_seconds(datetime.fromisoformat(created) if created else None, old, new)
    if started is not None:
        metrics.start_latency.observe(started)
    for told in announcements(old, new):
        log.info("%s/%s #%d %s", meta["namespace"], meta["name"], told.seq, told.text)
        if told.event_reason is not None:
            try:
                kopf.event(
                    as_body(body),
                    type="Warning" if told.failed else "Normal",
                    reason=told.event_reason,
                    message=told.text,
                )
            except LookupError:  # outside kopf's context (no event queue): the status has it all
                log.warning("%s/%s: no Kubernetes Event for %s", meta["namespace"], meta["name"], told.text)
