"""Kernel facts + the recorded status -> the next status (pure).

The lifecycle log in the status is the record of what has been announced.
``advance`` appends only what the facts show and the log lacks, in the fixed
start-up order, so replaying the same facts (after an operator restart, or a
duplicate watch event) changes nothing, and nothing is announced twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from kubernel import folders
from kubernel import resource as r
from kubernel.lifecycle import (
    PHASE_AFTER,
    REQUESTED_ENDS,
    STARTUP_ORDER,
    LifecycleEvent,
    Phase,
    Reason,
    Result,
)
from kubernel.model import (
    LIFECYCLE_LOG_LIMIT,
    Condition,
    KernelSessionSpec,
    KernelSessionStatus,
    LifecycleEntry,
)

from .facts import KernelFacts

# How far the start-up has got in the current restart generation, by phase.
_POSITION = {
    Phase.PENDING: -1,
    Phase.RESTARTING: -1,
    Phase.PREPARING: 0,
    Phase.PULLING: 1,
    Phase.CREATING: 2,
    Phase.RUNNING: 3,
}


class Need(Enum):
    """What a KernelSession asks of the operator, judged from the resource alone."""

    NOTHING = "nothing"  # the Pods' events (and the deadline timer) carry it on
    START = "start"  # no Pods recorded yet
    END = "end"  # spec.terminationRequested and not ended yet
    RESTART = "restart"  # spec.restartCount above status.observedRestart, or a restart without Pods yet


def need_of(body: dict[str, Any]) -> Need:
    """Level-triggered: the same answer for any event of the same state, so a missed,
    repeated or reordered event changes nothing (kopf's ``on.event``, and the timer
    as a safety net, ask this; no diff base is needed)."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    if body.get("metadata", {}).get("deletionTimestamp") or status.get("phase") == Phase.TERMINATED:
        return Need.NOTHING  # ending (the finalizer's job) or ended
    if spec.get("terminationRequested"):
        return Need.END
    if not status.get("createdAt"):
        return Need.START
    if (spec.get("restartCount") or 0) > (status.get("observedRestart") or 0):
        return Need.RESTART
    if status.get("phase") == Phase.RESTARTING and not status.get("pods"):
        return Need.RESTART  # begun, but the new Pods are not recorded yet
    return Need.NOTHING


@dataclass(frozen=True)
class Ending:
    """Why a session ends."""

    reason: Reason
    result: Result = Result.UNDEFINED
    message: str = ""
    exit_code: int | None = None


def result_for(spec: KernelSessionSpec, *, success: bool) -> Result:
    """``result`` is meaningful only for batch sessions."""
    if spec.type != "batch":
        return Result.UNDEFINED
    return Result.SUCCESS if success else Result.FAILURE


def ending_of(spec: KernelSessionSpec, kernels: list[KernelFacts], missing: list[str]) -> Ending | None:
    """The end the kernels' own state shows, if any (main kernel first)."""
    for k in sorted(kernels, key=lambda k: k.index):
        if k.evicted:
            return Ending(Reason.EVICTED, result_for(spec, success=False), f"Pod {k.name} was evicted")
        if k.oom_killed:
            return Ending(
                Reason.OOM_KILLED,
                result_for(spec, success=False),
                f"Pod {k.name} ran out of memory",
                exit_code=k.exit_code,
            )
        if k.pull_failure:
            return Ending(
                Reason.IMAGE_PULL_FAILED, result_for(spec, success=False), f"Pod {k.name}: {k.pull_failure}"
            )
        if k.create_failure:
            return Ending(
                Reason.FAILED_TO_CREATE, result_for(spec, success=False), f"Pod {k.name}: {k.create_failure}"
            )
        if k.exit_code is not None:
            if spec.type == "batch":
                ok = k.exit_code == 0
                return Ending(
                    Reason.TASK_FINISHED if ok else Reason.TASK_FAILED,
                    result_for(spec, success=ok),
                    f"Pod {k.name} exited with code {k.exit_code}",
                    exit_code=k.exit_code,
                )
            return Ending(
                Reason.SELF_TERMINATED,
                Result.UNDEFINED,
                f"Pod {k.name} exited with code {k.exit_code}",
                exit_code=k.exit_code,
            )
        if k.deleting:
            return Ending(
                Reason.SELF_TERMINATED, result_for(spec, success=False), f"Pod {k.name} was deleted"
            )
    if missing:
        return Ending(
            Reason.SELF_TERMINATED, result_for(spec, success=False), f"Pod {missing[0]} was deleted"
        )
    return None


def mounts_refused(
    spec: KernelSessionSpec, claims: dict[str, dict[str, str] | None], namespace: str
) -> Ending | None:
    """The end of a session that names a folder its owner may not mount (missing and not
    theirs read the same), asks a read-only one for writing, or a path outside its home."""
    owner = spec.owner
    for mount in spec.mounts:
        granted = folders.access_of(
            claims.get(mount.name), access_key=owner.access_key, domain=owner.domain, group=owner.group
        )
        why = None
        if granted is None:
            why = f"PersistentVolumeClaim {mount.name} not found in namespace {namespace}, or not the owner's"
        elif granted == "ro" and not mount.read_only:
            why = f"PersistentVolumeClaim {mount.name} is read-only for the owner"
        else:
            try:
                folders.confined(mount.path or mount.name)
            except folders.BadMount as exc:
                why = str(exc)
        if why:
            return Ending(Reason.VOLUME_NOT_FOUND, result_for(spec, success=False), why)
    return None


_STARTING = (Phase.PREPARING, Phase.PULLING, Phase.CREATING)


def generation_scheduled_at(status: KernelSessionStatus) -> datetime | None:
    """When the current restart generation's kernel_preparing was recorded."""
    for entry in reversed(status.lifecycle):
        if entry.restart == status.observed_restart and entry.event == LifecycleEvent.PREPARING:
            return entry.time
    return None


def generation_began(status: KernelSessionStatus) -> datetime | None:
    """When the current restart generation began: its first lifecycle entry, or, for a
    restart that has none yet, when the session stopped being Ready for it."""
    first = next((e.time for e in status.lifecycle if e.restart == status.observed_restart), None)
    if first is None and status.phase == Phase.RESTARTING:
        ready = next((c for c in status.conditions if c.type == "Ready"), None)
        return ready.last_transition_time if ready is not None else None
    return first


def next_deadline(
    spec: KernelSessionSpec,
    status: KernelSessionStatus,
    *,
    idle_timeout: int,
    start_deadline: int,
    retention: int,
    batch_timeout: int = 0,
) -> datetime | None:
    """When ``overdue`` (or retention) may next have something to say, or None: the one
    moment a session needs a look without an event. Events that move it re-arm it."""
    if status.phase == Phase.TERMINATED:
        return status.terminated_at + timedelta(seconds=retention) if status.terminated_at else None
    if status.created_at is None:
        return None
    if status.phase in (Phase.PENDING, Phase.RESTARTING, *_STARTING):
        # Unschedulable Pods count from their creation, scheduled ones from kernel_preparing.
        began = generation_scheduled_at(status) or generation_began(status) or status.created_at
        return began + timedelta(seconds=start_deadline)
    timeout = spec.idle_timeout_seconds if spec.idle_timeout_seconds is not None else idle_timeout
    if spec.type == "interactive" and status.phase == Phase.RUNNING and timeout > 0:
        marks = [t for t in (status.last_access_at, status.running_since) if t is not None]
        return max(marks) + timedelta(seconds=timeout) if marks else None
    return batch_deadline(spec, status, batch_timeout)


def batch_deadline(
    spec: KernelSessionSpec, status: KernelSessionStatus, batch_timeout: int
) -> datetime | None:
    """When a running batch session's run-time limit passes: its own ``batchTimeoutSeconds``,
    else the operator's ``batch_timeout`` (0: never)."""
    limit = spec.batch_timeout_seconds if spec.batch_timeout_seconds is not None else batch_timeout
    if spec.type == "batch" and status.phase == Phase.RUNNING and limit > 0 and status.running_since:
        return status.running_since + timedelta(seconds=limit)
    return None


def creation_refused(status: int, message: str = "") -> bool:
    """An API server's refusal of a kernel's objects that no retry can change (quota,
    admission, validation); a quota not counted yet is retried."""
    return status in (400, 403, 422) and r.QUOTA_NOT_READY not in message


def creation_gives_up(failed_attempts: int, attempts: int) -> bool:
    """Whether Pod creation, answered with an error ``failed_attempts`` times in a row, has
    had its ``attempts`` (KUBERNEL_POD_CREATE_ATTEMPTS)."""
    return failed_attempts >= attempts


def retry_delay(failures: int) -> float:
    """Seconds before retrying a session's failed action, after ``failures`` in a row."""
    return float(min(60, 2 ** max(0, failures - 1)))


def overdue(
    spec: KernelSessionSpec,
    status: KernelSessionStatus,
    kernels: list[KernelFacts],
    now: datetime,
    *,
    idle_timeout: int,
    start_deadline: int,
    batch_timeout: int = 0,
) -> Ending | None:
    """The end a deadline brings: unschedulable too long, idle too long, or a batch
    session running past ``batch_timeout`` (0: no limit)."""
    if status.phase == Phase.TERMINATED:
        return None
    for k in kernels:
        if k.unschedulable and k.created_at:
            since = datetime.fromisoformat(k.created_at)
            if now - since > timedelta(seconds=start_deadline):
                return Ending(
                    Reason.PENDING_TIMEOUT,
                    result_for(spec, success=False),
                    f"Pod {k.name} could not be scheduled for {start_deadline}s: {k.unschedulable}",
                )
    began = generation_scheduled_at(status)
    if status.phase in _STARTING and began is not None and now - began > timedelta(seconds=start_deadline):
        # Scheduled but never running: the node cannot pull, create a sandbox (containerd
        # down, CNI broken) or start the container. The kubelet's Events say which.
        problems = "; ".join(k.start_problem for k in kernels if k.start_problem)
        return Ending(
            Reason.FAILED_TO_START,
            result_for(spec, success=False),
            f"not started within {start_deadline}s of being scheduled (phase {status.phase})"
            + (f": {problems}" if problems else ""),
        )
    timeout = spec.idle_timeout_seconds if spec.idle_timeout_seconds is not None else idle_timeout
    if spec.type == "interactive" and status.phase == Phase.RUNNING and timeout > 0:
        marks = [t for t in (status.last_access_at, status.running_since) if t is not None]
        if marks and now - max(marks) > timedelta(seconds=timeout):
            return Ending(Reason.IDLE_TIMEOUT, Result.UNDEFINED, f"no access for {timeout}s")
    limit = batch_deadline(spec, status, batch_timeout)
    if limit is not None and status.running_since is not None and now > limit:
        allowed = int((limit - status.running_since).total_seconds())
        return Ending(Reason.EXEC_TIMEOUT, result_for(spec, success=False), f"ran longer than {allowed}s")
    return None


def _append(
    status: KernelSessionStatus,
    event: LifecycleEvent,
    reason: str,
    now: datetime,
    result: Result | None = None,
) -> None:
    status.last_seq += 1
    entry = LifecycleEntry(
        seq=status.last_seq,
        event=event,
        reason=reason,
        result=result,
        restart=status.observed_restart,
        time=now,
    )
    status.lifecycle = [*status.lifecycle, entry][-LIFECYCLE_LOG_LIMIT:]
    status.phase = PHASE_AFTER.get(event, status.phase)
    status.reason = reason


def set_condition(
    status: KernelSessionStatus, type_: str, value: bool, reason: str, message: str, now: datetime
) -> None:
    text = "True" if value else "False"
    for i, c in enumerate(status.conditions):
        if c.type == type_:
            if (c.status, c.reason, c.message) != (text, reason, message):
                moved = now if c.status != text else c.last_transition_time
                status.conditions[i] = Condition(
                    type=type_, status=text, reason=reason, message=message, last_transition_time=moved
                )
            return
    status.conditions.append(
        Condition(type=type_, status=text, reason=reason, message=message, last_transition_time=now)
    )


def _close_running(status: KernelSessionStatus, now: datetime) -> None:
    if status.running_since is not None:
        status.cpu_credit_ms += max(0, int((now - status.running_since).total_seconds() * 1000))
        status.running_since = None


def ending_events(status: KernelSessionStatus, ending: Ending) -> list[tuple[LifecycleEvent, str]]:
    """The events that announce an end, before kernel_terminated (Backend.AI's own):
    kernel_cancelled if the session never started; else kernel_terminating if the end
    was asked for; and a batch task's kernel_success / kernel_failure."""
    events: list[tuple[LifecycleEvent, str]] = []
    if status.started_at is None:
        events.append((LifecycleEvent.CANCELLED, ending.reason))
    elif ending.reason in REQUESTED_ENDS:
        events.append((LifecycleEvent.TERMINATING, ending.reason))
    if ending.reason == Reason.TASK_FINISHED:
        events.append((LifecycleEvent.SUCCESS, Reason.TASK_SUCCESS))
    elif ending.reason == Reason.TASK_FAILED:
        events.append((LifecycleEvent.FAILURE, Reason.TASK_FAILURE))
    return events


def terminate(status: KernelSessionStatus, ending: Ending, now: datetime) -> KernelSessionStatus:
    """Record the end (once): the ending events, kernel_terminated, final figures, conditions."""
    if status.phase == Phase.TERMINATED:
        return status
    new = status.model_copy(deep=True)
    _close_running(new, now)
    for event, reason in ending_events(status, ending):
        _append(new, event, reason, now)
    _append(new, LifecycleEvent.TERMINATED, ending.reason, now, result=ending.result)
    new.result = ending.result
    new.message = ending.message
    new.terminated_at = now
    new.kernel_address = None
    if ending.exit_code is not None:
        new.exit_code = ending.exit_code
    set_condition(new, "Ready", False, "Terminated", ending.message, now)
    set_condition(new, "Terminated", True, _camel(ending.reason), ending.message, now)
    return new


def _camel(reason: str) -> str:
    return "".join(part.capitalize() for part in reason.split("-")) or "Unknown"


def advance(
    status: KernelSessionStatus,
    spec: KernelSessionSpec,
    kernels: list[KernelFacts],
    missing: list[str],
    now: datetime,
) -> KernelSessionStatus:
    """Append the lifecycle events the facts show and the log lacks; end the session if due."""
    if status.phase == Phase.TERMINATED or status.observed_restart != spec.restart_count:
        return status
    new = status.model_copy(deep=True)
    main = next((k for k in kernels if k.index == 0), None)
    ending = ending_of(spec, kernels, missing)

    reached: set[LifecycleEvent] = set()
    if main is not None:
        if main.scheduled:
            reached.add(LifecycleEvent.PREPARING)
        if main.pulling:
            reached.add(LifecycleEvent.PULLING)
        if main.pulled or main.ran:
            reached.add(LifecycleEvent.CREATING)
    all_ready = len(kernels) == spec.cluster_size and all(k.ready for k in kernels)
    if all_ready or (ending is not None and ending.exit_code is not None and main is not None and main.ran):
        reached.add(LifecycleEvent.STARTED)

    if reached:
        target = max(STARTUP_ORDER.index(e) for e in reached)
        reason = (
            Reason.RESTARTING if new.observed_restart > 0 else Reason.WARM_POOL if new.pool else Reason.NONE
        )
        for position in range(_POSITION.get(new.phase, 3) + 1, target + 1):
            event = STARTUP_ORDER[position]
            if event == LifecycleEvent.PULLING and event not in reached:
                continue  # the node had the image: no pull happened
            _append(new, event, reason, now)
            if event == LifecycleEvent.PREPARING and new.scheduled_at is None:
                new.scheduled_at = now
            if event == LifecycleEvent.STARTED:
                new.running_since = now
                new.started_at = new.started_at or now
                new.last_access_at = new.last_access_at or now

    waiting = next((k.unschedulable for k in kernels if k.unschedulable and not k.scheduled), None)
    if waiting is not None and new.phase != Phase.RUNNING:
        if new.phase in (Phase.PENDING, Phase.RESTARTING) and not _pending_announced(new):
            _append(new, LifecycleEvent.PENDING, Reason.NO_AVAILABLE_INSTANCES, now)
        new.waiting = waiting[:1024]
    else:
        new.waiting = ""

    # A Pod the scheduler has not looked at yet says nothing: only its verdict is recorded.
    if main is not None and (main.scheduled or main.unschedulable is not None):
        set_condition(
            new,
            "Scheduled",
            main.scheduled,
            "Scheduled" if main.scheduled else "Unschedulable",
            main.unschedulable or "",
            now,
        )
    if ending is not None:
        return terminate(new, ending, now)
    if main is not None and new.phase == Phase.RUNNING and main.runner_address:
        new.kernel_address = main.runner_address
    set_condition(
        new,
        "Ready",
        new.phase == Phase.RUNNING,
        "KernelsReady" if new.phase == Phase.RUNNING else "KernelsNotReady",
        "",
        now,
    )
    return new


def _pending_announced(status: KernelSessionStatus) -> bool:
    """kernel_pending was written for this wait (since the generation's last start-up step)."""
    for entry in reversed(status.lifecycle):
        if entry.event == LifecycleEvent.PENDING and entry.restart == status.observed_restart:
            return True
        if (
            entry.event in (LifecycleEvent.ENQUEUED, *STARTUP_ORDER)
            or entry.restart != status.observed_restart
        ):
            return False
    return False


def enqueue(status: KernelSessionStatus, now: datetime) -> KernelSessionStatus:
    """The session's first entry, kernel_enqueued (Backend.AI's), written with the record of its Pods."""
    new = status.model_copy(deep=True)
    _append(new, LifecycleEvent.ENQUEUED, Reason.NONE, now)
    return new


def begin_restart(status: KernelSessionStatus, spec: KernelSessionSpec, now: datetime) -> KernelSessionStatus:
    """A restart was requested: new Pods come; age and CPU credit carry on; idle time resets."""
    new = status.model_copy(deep=True)
    _close_running(new, now)
    new.observed_restart = spec.restart_count
    new.pods = []  # the new generation's, once created
    new.kernel_address = None
    new.phase = Phase.RESTARTING
    new.reason = Reason.RESTARTING
    new.last_access_at = now
    set_condition(new, "Ready", False, "Restarting", f"restart {spec.restart_count} requested", now)
    return new
