"""Lifecycle mapping as a matrix: kernel facts + recorded status -> next status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kubernel.lifecycle import Phase, Reason, Result
from kubernel.model import KernelSessionSpec, KernelSessionStatus, Mount
from kubernel_operator.facts import KernelFacts, kernel_facts
from kubernel_operator.transitions import (
    Ending,
    Need,
    advance,
    begin_restart,
    ending_events,
    enqueue,
    mounts_refused,
    need_of,
    overdue,
    terminate,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SPEC = KernelSessionSpec(session_id="abcd", owner={"access_key": "AK"}, image="python:3.6")
BATCH = SPEC.model_copy(update={"type": "batch", "startup_command": "run"})


def started(**kw) -> KernelSessionStatus:
    return KernelSessionStatus(created_at=NOW, **kw)


def facts(**kw) -> KernelFacts:
    return KernelFacts(name="s-r0-0", **kw)


def names(status: KernelSessionStatus) -> list[str]:
    return [e.event for e in status.lifecycle]


@pytest.mark.parametrize(
    ("kernel", "expected"),
    [
        (facts(), []),
        (facts(scheduled=True), ["kernel_preparing"]),
        (facts(scheduled=True, pulling=True), ["kernel_preparing", "kernel_pulling"]),
        (
            facts(scheduled=True, pulling=True, pulled=True),
            ["kernel_preparing", "kernel_pulling", "kernel_creating"],
        ),
        (facts(scheduled=True, pulled=True), ["kernel_preparing", "kernel_creating"]),
        (
            facts(scheduled=True, pulled=True, ready=True, ran=True),
            ["kernel_preparing", "kernel_creating", "kernel_started"],
        ),
        (
            facts(scheduled=True, pulling=True, pulled=True, ready=True, ran=True),
            ["kernel_preparing", "kernel_pulling", "kernel_creating", "kernel_started"],
        ),
    ],
)
def test_startup_events_follow_the_facts(kernel: KernelFacts, expected: list[str]) -> None:
    new = advance(started(), SPEC, [kernel], [], NOW)
    assert names(new) == expected
    assert [e.seq for e in new.lifecycle] == list(range(1, len(expected) + 1))


def test_replaying_the_same_facts_changes_nothing() -> None:
    kernel = facts(scheduled=True, pulling=True)
    once = advance(started(), SPEC, [kernel], [], NOW)
    assert advance(once, SPEC, [kernel], [], NOW + timedelta(seconds=1)) == once


def test_a_late_pulling_event_is_not_announced_after_creating() -> None:
    created = advance(started(), SPEC, [facts(scheduled=True, pulled=True)], [], NOW)
    later = advance(created, SPEC, [facts(scheduled=True, pulled=True, pulling=True)], [], NOW)
    assert names(later) == ["kernel_preparing", "kernel_creating"]


def test_started_needs_every_kernel_ready() -> None:
    spec = SPEC.model_copy(update={"cluster_size": 2})
    ready = facts(scheduled=True, pulled=True, ready=True, ran=True)
    sub = KernelFacts(name="s-r0-1", index=1, scheduled=True)
    assert "kernel_started" not in names(advance(started(), spec, [ready, sub], [], NOW))
    sub_ready = KernelFacts(name="s-r0-1", index=1, scheduled=True, ready=True, ran=True)
    assert names(advance(started(), spec, [ready, sub_ready], [], NOW))[-1] == "kernel_started"


@pytest.mark.parametrize(
    ("spec", "kernel", "missing", "reason", "result"),
    [
        (BATCH, facts(scheduled=True, ran=True, exit_code=0), [], Reason.TASK_FINISHED, Result.SUCCESS),
        (BATCH, facts(scheduled=True, ran=True, exit_code=2), [], Reason.TASK_FAILED, Result.FAILURE),
        (SPEC, facts(scheduled=True, ran=True, exit_code=0), [], Reason.SELF_TERMINATED, Result.UNDEFINED),
        (
            SPEC,
            facts(scheduled=True, pulling=True, pull_failure="ErrImagePull"),
            [],
            Reason.IMAGE_PULL_FAILED,
            Result.UNDEFINED,
        ),
        (
            BATCH,
            facts(scheduled=True, pull_failure="ImagePullBackOff"),
            [],
            Reason.IMAGE_PULL_FAILED,
            Result.FAILURE,
        ),
        (
            SPEC,
            facts(scheduled=True, ran=True, oom_killed=True, exit_code=137),
            [],
            Reason.OOM_KILLED,
            Result.UNDEFINED,
        ),
        (
            SPEC,
            facts(scheduled=True, ready=True, ran=True, evicted=True),
            [],
            Reason.EVICTED,
            Result.UNDEFINED,
        ),
        (
            SPEC,
            facts(scheduled=True, ready=True, ran=True, deleting=True),
            [],
            Reason.SELF_TERMINATED,
            Result.UNDEFINED,
        ),
        (SPEC, None, ["s-r0-0"], Reason.SELF_TERMINATED, Result.UNDEFINED),
    ],
)
def test_endings(spec, kernel, missing, reason, result) -> None:
    new = advance(started(), spec, [kernel] if kernel else [], missing, NOW)
    last = new.lifecycle[-1]
    assert (last.event, last.reason, last.result) == ("kernel_terminated", reason, result)
    assert new.phase == "Terminated" and new.terminated_at == NOW


def test_a_batch_that_exits_before_it_was_seen_ready_still_reports_started() -> None:
    new = advance(started(), BATCH, [facts(scheduled=True, pulled=True, ran=True, exit_code=0)], [], NOW)
    assert names(new) == [
        "kernel_preparing",
        "kernel_creating",
        "kernel_started",
        "kernel_success",
        "kernel_terminated",
    ]


NEVER_STARTED = started()
RAN = started(started_at=NOW)


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        # Ended before it ever started: cancelled (Backend.AI's word), whatever the reason.
        (NEVER_STARTED, Reason.USER_REQUESTED, [("kernel_cancelled", "user-requested")]),
        (NEVER_STARTED, Reason.IMAGE_PULL_FAILED, [("kernel_cancelled", "image-pull-failed")]),
        (NEVER_STARTED, Reason.FAILED_TO_START, [("kernel_cancelled", "failed-to-start")]),
        # Started, and the end was asked for: terminating first.
        (RAN, Reason.USER_REQUESTED, [("kernel_terminating", "user-requested")]),
        (RAN, Reason.FORCE_TERMINATED, [("kernel_terminating", "force-terminated")]),
        (RAN, Reason.IDLE_TIMEOUT, [("kernel_terminating", "idle-timeout")]),
        # Started, and the kernel ended by itself: nothing before kernel_terminated...
        (RAN, Reason.SELF_TERMINATED, []),
        (RAN, Reason.OOM_KILLED, []),
        # ...but a batch task's outcome, as kernel_success / kernel_failure.
        (RAN, Reason.TASK_FINISHED, [("kernel_success", "task-success")]),
        (RAN, Reason.TASK_FAILED, [("kernel_failure", "task-failure")]),
    ],
)
def test_ending_events(status: KernelSessionStatus, reason: Reason, expected: list[tuple[str, str]]) -> None:
    assert ending_events(status, Ending(reason)) == expected
    ended = terminate(status, Ending(reason), NOW)
    assert [(e.event, e.reason) for e in ended.lifecycle] == [*expected, ("kernel_terminated", reason)]
    assert ended.phase == "Terminated"


def test_terminate_is_once_and_closes_cpu_credit() -> None:
    running = advance(started(), SPEC, [facts(scheduled=True, pulled=True, ready=True, ran=True)], [], NOW)
    ended = terminate(running, Ending(Reason.USER_REQUESTED), NOW + timedelta(seconds=3))
    assert ended.cpu_credit_ms == 3000 and ended.running_since is None
    assert terminate(ended, Ending(Reason.IDLE_TIMEOUT), NOW + timedelta(seconds=9)) == ended


def test_restart_replays_with_reason_restarting_and_keeps_counting() -> None:
    ready = facts(scheduled=True, pulled=True, ready=True, ran=True)
    running = advance(started(), SPEC, [ready], [], NOW)
    spec = SPEC.model_copy(update={"restart_count": 1})
    restarting = begin_restart(running, spec, NOW + timedelta(seconds=2))
    assert restarting.phase == "Restarting" and restarting.cpu_credit_ms == 2000
    again = advance(restarting, spec, [ready], [], NOW + timedelta(seconds=3))
    replay = [(e.event, e.reason, e.restart) for e in again.lifecycle[3:]]
    assert replay == [
        ("kernel_preparing", "restarting", 1),
        ("kernel_creating", "restarting", 1),
        ("kernel_started", "restarting", 1),
    ]
    assert again.started_at == running.started_at


@pytest.mark.parametrize(("idle", "elapsed", "ends"), [(10, 5, False), (10, 11, True), (0, 10**6, False)])
def test_idle_timeout(idle: int, elapsed: int, ends: bool) -> None:
    running = advance(started(), SPEC, [facts(scheduled=True, pulled=True, ready=True, ran=True)], [], NOW)
    due = overdue(SPEC, running, [], NOW + timedelta(seconds=elapsed), idle_timeout=idle, start_deadline=60)
    assert (due is not None and due.reason == Reason.IDLE_TIMEOUT) == ends


def test_unschedulable_past_the_deadline_is_a_pending_timeout() -> None:
    stuck = facts(unschedulable="0/3 nodes are available", created_at="2026-11-21T12:00:00Z")
    assert (
        overdue(SPEC, started(), [stuck], NOW + timedelta(seconds=5), idle_timeout=0, start_deadline=10)
        is None
    )
    due = overdue(SPEC, started(), [stuck], NOW + timedelta(seconds=11), idle_timeout=0, start_deadline=10)
    assert due.reason == Reason.PENDING_TIMEOUT and "0/3 nodes" in due.message


def test_a_session_no_node_can_hold_says_so_once_per_wait() -> None:
    stuck = facts(unschedulable="0/1 nodes are available: 1 Insufficient cpu.")
    queued = enqueue(started(), NOW)
    waiting = advance(queued, SPEC, [stuck], [], NOW)
    assert [(e.event, e.reason) for e in waiting.lifecycle][-1] == (
        "kernel_pending",
        "no-available-instances",
    )
    assert waiting.phase == Phase.PENDING and waiting.reason == "no-available-instances"
    assert waiting.waiting == "0/1 nodes are available: 1 Insufficient cpu."
    again = advance(
        waiting, SPEC, [facts(unschedulable="0/1 nodes are available: 1 Insufficient memory.")], [], NOW
    )
    assert names(again).count("kernel_pending") == 1 and again.waiting.endswith("Insufficient memory.")
    placed = advance(again, SPEC, [facts(scheduled=True, pulled=True, ready=True, ran=True)], [], NOW)
    assert names(placed)[-1] == "kernel_started" and placed.waiting == ""
    # A restart's wait is a wait of its own.
    spec = SPEC.model_copy(update={"restart_count": 1})
    restarting = begin_restart(placed, spec, NOW)
    stuck_again = advance(restarting, spec, [stuck], [], NOW)
    assert names(stuck_again).count("kernel_pending") == 2 and stuck_again.waiting


@pytest.mark.parametrize(
    ("reached", "elapsed", "problem", "ends"),
    [
        (facts(scheduled=True), 9, None, False),  # within the deadline
        (facts(scheduled=True), 11, None, True),  # scheduled, never pulled nor started
        (facts(scheduled=True, pulling=True), 11, None, True),  # a pull that takes too long
        (facts(scheduled=True), 11, 'FailedCreatePodSandBox: no runtime for "x"', True),
        (
            facts(scheduled=True, pulled=True, ready=True, ran=True),
            10**6,
            None,
            False,
        ),  # running: no deadline
    ],
)
def test_scheduled_kernels_that_never_start_fail_at_the_deadline(
    reached: KernelFacts, elapsed: int, problem: str | None, ends: bool
) -> None:
    status = advance(started(), SPEC, [reached], [], NOW)
    stuck = KernelFacts(name="s-r0-0", scheduled=True, start_problem=problem)
    due = overdue(SPEC, status, [stuck], NOW + timedelta(seconds=elapsed), idle_timeout=0, start_deadline=10)
    assert (due is not None and due.reason == Reason.FAILED_TO_START) == ends
    if ends:
        assert "not started within 10s" in due.message
        assert (problem or "not started") in due.message
        assert (
            overdue(SPEC, status, [], NOW + timedelta(seconds=elapsed), idle_timeout=0, start_deadline=10)
            is not None
        )  # the deadline's check needs no Pods


def test_a_restart_generation_gets_its_own_start_deadline() -> None:
    running = advance(started(), SPEC, [facts(scheduled=True, pulled=True, ready=True, ran=True)], [], NOW)
    spec = SPEC.model_copy(update={"restart_count": 1})
    later = NOW + timedelta(hours=1)
    restarting = advance(begin_restart(running, spec, later), spec, [facts(scheduled=True)], [], later)
    assert (
        overdue(spec, restarting, [], later + timedelta(seconds=5), idle_timeout=0, start_deadline=10) is None
    )
    assert (
        overdue(spec, restarting, [], later + timedelta(seconds=11), idle_timeout=0, start_deadline=10).reason
        == Reason.FAILED_TO_START
    )


def test_kernel_facts_from_a_pod() -> None:
    pod = {
        "metadata": {
            "name": "s-r0-0",
            "labels": {"kubernel.io/kernel-index": "0"},
            "creationTimestamp": "2026-11-21T12:00:00Z",
        },
        "status": {
            "phase": "Failed",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
            "containerStatuses": [{"state": {"terminated": {"exitCode": 3, "reason": "Error"}}}],
        },
    }
    got = kernel_facts(pod, ["Pulling", "Pulled", "Created"])
    assert got == KernelFacts(
        name="s-r0-0",
        index=0,
        scheduled=True,
        pulling=True,
        pulled=True,
        ran=True,
        exit_code=3,
        created_at="2026-11-21T12:00:00Z",
    )


def test_scheduled_is_recorded_only_once_the_scheduler_has_a_verdict() -> None:
    def conditions(kernel: KernelFacts) -> dict[str, tuple[str, str]]:
        new = advance(started(), SPEC, [kernel], [], NOW)
        return {c.type: (c.status, c.reason) for c in new.conditions}

    assert conditions(facts()) == {"Ready": ("False", "KernelsNotReady")}  # just created: no verdict yet
    assert conditions(facts(unschedulable="0/4 nodes are available"))["Scheduled"] == (
        "False",
        "Unschedulable",
    )
    assert conditions(facts(scheduled=True))["Scheduled"] == ("True", "Scheduled")


def body(spec: dict | None = None, status: dict | None = None, deleting: bool = False) -> dict:
    meta = {"name": "s", "deletionTimestamp": "2026-11-21T12:00:00Z"} if deleting else {"name": "s"}
    return {"metadata": meta, "spec": {"restartCount": 0, **(spec or {})}, "status": status or {}}


CREATED = {"createdAt": "2026-11-21T12:00:00Z", "observedRestart": 0, "phase": "Running"}


@pytest.mark.parametrize(
    ("session", "expected"),
    [
        (body(), Need.START),  # just created: no status at all
        (body(status={"phase": "Pending"}), Need.START),  # something wrote status, but no start recorded
        (body(status=CREATED), Need.NOTHING),
        (body({"restartCount": 1}, CREATED), Need.RESTART),
        (
            body(
                {"restartCount": 1},
                {**CREATED, "observedRestart": 1, "phase": "Restarting", "pods": ["s-r1-0"]},
            ),
            Need.NOTHING,
        ),  # restart under way
        (
            body({"restartCount": 1}, {**CREATED, "observedRestart": 1, "phase": "Restarting"}),
            Need.RESTART,
        ),  # begun, but interrupted before the new Pods were recorded
        (body({"terminationRequested": "user-requested"}, CREATED), Need.END),
        (body({"terminationRequested": "user-requested"}), Need.END),  # requested before it started
        (body({"terminationRequested": "user-requested", "restartCount": 2}, CREATED), Need.END),  # end wins
        (body({"terminationRequested": "user-requested"}, {**CREATED, "phase": "Terminated"}), Need.NOTHING),
        (body({"restartCount": 3}, {**CREATED, "phase": "Terminated"}), Need.NOTHING),
        (body(deleting=True), Need.NOTHING),  # the finalizer ends it
    ],
)
def test_what_a_session_needs_depends_on_its_state_alone(session: dict, expected: Need) -> None:
    assert need_of(session) == expected


def test_the_runner_address_is_recorded_while_running_and_cleared_at_restart_and_end() -> None:
    address = "10.245.0.7:2001"
    creating = advance(started(), SPEC, [facts(scheduled=True, pulled=True, runner_address=address)], [], NOW)
    assert creating.kernel_address is None  # not before the kernel can run code
    running = advance(
        creating,
        SPEC,
        [facts(scheduled=True, pulled=True, ready=True, ran=True, runner_address=address)],
        [],
        NOW,
    )
    assert running.kernel_address == address
    assert begin_restart(running, SPEC.model_copy(update={"restart_count": 1}), NOW).kernel_address is None
    assert terminate(running, Ending(Reason.USER_REQUESTED), NOW).kernel_address is None


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (
            {
                "status": {"podIP": "10.0.0.5"},
                "spec": {"containers": [{"ports": [{"name": "runner", "containerPort": 2001}]}]},
            },
            "10.0.0.5:2001",
        ),
        (
            {"status": {}, "spec": {"containers": [{"ports": [{"name": "runner", "containerPort": 2001}]}]}},
            None,
        ),
        (
            {
                "status": {"podIP": "10.0.0.5"},
                "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 80}]}]},
            },
            None,
        ),
        ({"status": {"podIP": "10.0.0.5"}, "spec": {"containers": [{}]}}, None),
    ],
)
def test_runner_address_of_a_pod(pod: dict, expected: str | None) -> None:
    assert kernel_facts(pod).runner_address == expected


def test_enqueued_comes_first_and_the_startup_follows() -> None:
    queued = enqueue(started(), NOW)
    assert names(queued) == ["kernel_enqueued"] and queued.phase == "Pending"
    new = advance(queued, SPEC, [facts(scheduled=True, pulled=True, ready=True, ran=True)], [], NOW)
    assert names(new) == ["kernel_enqueued", "kernel_preparing", "kernel_creating", "kernel_started"]
    assert [e.seq for e in new.lifecycle] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("mounts", "claims", "refused"),
    [
        ([], {}, False),
        ([{"name": "mine"}], {"mine": {"kubernel.io/access-key": "AK"}}, False),
        ([{"name": "mine"}], {"mine": None}, True),
        ([{"name": "theirs"}], {"theirs": {"kubernel.io/access-key": "AK2"}}, True),
        ([{"name": "plain"}], {"plain": {}}, True),
        (
            [{"name": "shared"}],
            {"shared": {"kubernel.io/domain": "default", "kubernel.io/access": "ro"}},
            True,
        ),
        (
            [{"name": "shared", "readOnly": True}],
            {"shared": {"kubernel.io/domain": "default", "kubernel.io/access": "ro"}},
            False,
        ),
        ([{"name": "mine", "path": "/etc"}], {"mine": {"kubernel.io/access-key": "AK"}}, True),
        ([{"name": "mine", "path": "../x"}], {"mine": {"kubernel.io/access-key": "AK"}}, True),
    ],
)
def test_the_operator_checks_folders_again(mounts: list[dict], claims: dict, refused: bool) -> None:
    """Whoever made the KernelSession (the API, or kubectl), its folders must be the owner's."""
    spec = SPEC.model_copy(update={"mounts": [Mount.model_validate(m) for m in mounts]})
    ending = mounts_refused(spec, claims, "ns")
    assert (ending is not None) is refused
    if ending is not None:
        assert ending.reason == Reason.VOLUME_NOT_FOUND
