"""The lifecycle vocabulary: event names, reasons, results and phases.

This is the one place the words are defined; docs/lifecycle.md explains them.
"""

from __future__ import annotations

from enum import StrEnum


class LifecycleEvent(StrEnum):
    ENQUEUED = "kernel_enqueued"  # the operator accepted the session and created its Pods
    # Ours (the seed: "more events may be added"): no node can hold the kernels yet; once
    # per wait, with reason no-available-instances, the scheduler's words in status.waiting.
    PENDING = "kernel_pending"
    PREPARING = "kernel_preparing"
    PULLING = "kernel_pulling"
    CREATING = "kernel_creating"
    STARTED = "kernel_started"
    # The ending, written together with kernel_terminated (docs/lifecycle.md, "Ends"):
    CANCELLED = "kernel_cancelled"  # ended before it ever started
    TERMINATING = "kernel_terminating"  # a started session's end was asked for (DELETE, idle timeout)
    SUCCESS = "kernel_success"  # a batch task exited with 0
    FAILURE = "kernel_failure"  # a batch task exited non-zero
    TERMINATED = "kernel_terminated"


# Start-up events in the order they happen; pulling is skipped when the node
# already has the image.
STARTUP_ORDER: tuple[LifecycleEvent, ...] = (
    LifecycleEvent.PREPARING,
    LifecycleEvent.PULLING,
    LifecycleEvent.CREATING,
    LifecycleEvent.STARTED,
)


class Reason(StrEnum):
    """Short kebab-case words; Backend.AI's own where one fits."""

    NONE = ""  # an ordinary first start-up step
    RESTARTING = "restarting"  # start-up steps replayed by a restart
    WARM_POOL = "warm-pool"  # ours: start-up steps of a kernel claimed from a KernelPool
    USER_REQUESTED = "user-requested"  # DELETE /kernel/:id, or kubectl delete
    FORCE_TERMINATED = "force-terminated"  # DELETE with forced=true by an admin
    SELF_TERMINATED = "self-terminated"  # the process ended, or the Pod vanished behind our back
    IDLE_TIMEOUT = "idle-timeout"  # no access for the idle timeout
    EXEC_TIMEOUT = "exec-timeout"  # a batch session ran past its run-time limit (later Backend.AI's word)
    FAILED_TO_START = "failed-to-start"  # scheduled, but not started by the start deadline
    NO_AVAILABLE_INSTANCES = "no-available-instances"  # Backend.AI's: waiting, no node has room
    PENDING_TIMEOUT = "pending-timeout"  # Backend.AI's: unschedulable past the start deadline
    FAILED_TO_CREATE = "failed-to-create"  # the Pods could not be created
    TASK_FINISHED = "task-finished"  # batch: exit code 0
    TASK_FAILED = "task-failed"  # batch: non-zero exit code
    IMAGE_PULL_FAILED = "image-pull-failed"  # ours: ErrImagePull / ImagePullBackOff
    EVICTED = "evicted"  # ours: the kubelet or the eviction API removed the Pod
    OOM_KILLED = "oom-killed"  # ours: the container exceeded its memory limit
    VOLUME_NOT_FOUND = "volume-not-found"  # ours: a mount names a missing PersistentVolumeClaim
    TASK_SUCCESS = "task-success"  # the reason of kernel_success (Backend.AI's)
    TASK_FAILURE = "task-failure"  # the reason of kernel_failure (Backend.AI's)


# Ends that mean something went wrong: Warning Events, whatever the session type.
FAILURE_REASONS = frozenset(
    {
        Reason.FAILED_TO_START,
        Reason.PENDING_TIMEOUT,
        Reason.FAILED_TO_CREATE,
        Reason.EXEC_TIMEOUT,
        Reason.TASK_FAILED,
        Reason.IMAGE_PULL_FAILED,
        Reason.EVICTED,
        Reason.OOM_KILLED,
        Reason.VOLUME_NOT_FOUND,
    }
)


class Result(StrEnum):
    UNDEFINED = "UNDEFINED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


class Phase(StrEnum):
    PENDING = "Pending"
    PREPARING = "Preparing"
    PULLING = "Pulling"
    CREATING = "Creating"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    TERMINATED = "Terminated"


# The phase each event moves a session to. The ending events (kernel_cancelled,
# kernel_terminating, kernel_success, kernel_failure) move none: kernel_terminated
# always follows them in the same status write.
PHASE_AFTER: dict[LifecycleEvent, Phase] = {
    LifecycleEvent.ENQUEUED: Phase.PENDING,
    LifecycleEvent.PREPARING: Phase.PREPARING,
    LifecycleEvent.PULLING: Phase.PULLING,
    LifecycleEvent.CREATING: Phase.CREATING,
    LifecycleEvent.STARTED: Phase.RUNNING,
    LifecycleEvent.TERMINATED: Phase.TERMINATED,
}

# Ends that were asked for, rather than done by the kernel itself: announced with
# kernel_terminating first, as Backend.AI's manager does when it destroys a session.
REQUESTED_ENDS = frozenset({Reason.USER_REQUESTED, Reason.FORCE_TERMINATED, Reason.IDLE_TIMEOUT})

# What the REST API reports as `status` (Backend.AI's KernelStatus words).
API_STATUS: dict[Phase, str] = {
    Phase.PENDING: "PENDING",
    Phase.PREPARING: "PREPARING",
    Phase.PULLING: "PULLING",
    Phase.CREATING: "BUILDING",
    Phase.RUNNING: "RUNNING",
    Phase.RESTARTING: "RESTARTING",
    Phase.TERMINATED: "TERMINATED",
}
