"""One schedule of deadlines for every session (operator/kubernel_operator/schedule.py),
and when each session's next deadline is (transitions.next_deadline)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from kubernel.lifecycle import Reason, Result
from kubernel.model import KernelSessionSpec, KernelSessionStatus
from kubernel_operator.facts import KernelFacts
from kubernel_operator.schedule import Schedule
from kubernel_operator.transitions import (
    Ending,
    advance,
    begin_restart,
    creation_gives_up,
    creation_refused,
    next_deadline,
    overdue,
    retry_delay,
    terminate,
)

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
A, B, C = ("ns", "a"), ("ns", "b"), ("ns", "c")


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def test_keys_come_due_in_order_and_once() -> None:
    schedule = Schedule()
    schedule.arm(B, at(20))
    schedule.arm(A, at(10))
    schedule.arm(C, at(30))
    assert schedule.next_at() == at(10).timestamp() and len(schedule) == 3
    assert schedule.pop_due(at(5).timestamp()) == []
    assert schedule.pop_due(at(25).timestamp()) == [A, B]
    assert schedule.pop_due(at(25).timestamp()) == [] and len(schedule) == 1


def test_arming_again_replaces_and_disarming_forgets() -> None:
    schedule = Schedule()
    schedule.arm(A, at(10))
    schedule.arm(A, at(50))  # an access moved the idle deadline
    schedule.arm(B, at(20))
    schedule.disarm(B)
    assert schedule.next_at() == at(50).timestamp() and schedule.when(A) == at(50)
    assert schedule.pop_due(at(30).timestamp()) == []
    assert schedule.pop_due(at(60).timestamp()) == [A]
    schedule.arm(C, None)  # no deadline at all
    assert schedule.next_at() is None and len(schedule) == 0


def test_the_work_does_not_grow_with_sessions_that_have_no_deadline_due() -> None:
    schedule = Schedule()
    for i in range(10_000):
        schedule.arm(("ns", f"s{i}"), at(3600 + i))
    assert schedule.pop_due(at(60).timestamp()) == []  # one look at the heap's head


async def test_the_task_fires_a_due_key_and_wakes_for_an_earlier_one() -> None:
    schedule = Schedule()
    fired: list[tuple[str, str]] = []
    done = asyncio.Event()

    async def fire(key: tuple[str, str]) -> None:
        fired.append(key)
        done.set()

    schedule.arm(A, datetime.now(UTC) + timedelta(hours=1))
    task = asyncio.create_task(schedule.run(fire))
    await asyncio.sleep(0)  # the task sleeps towards the hour
    schedule.arm(B, datetime.now(UTC))  # an earlier deadline wakes it
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    assert fired == [B] and schedule.when(A) is not None


async def test_a_failing_fire_does_not_stop_the_schedule() -> None:
    schedule = Schedule()
    fired = asyncio.Event()

    async def fire(key: tuple[str, str]) -> None:
        if key == A:
            raise RuntimeError("boom")
        fired.set()

    task = asyncio.create_task(schedule.run(fire))
    schedule.arm(A, datetime.now(UTC))
    schedule.arm(B, datetime.now(UTC) + timedelta(milliseconds=50))
    await asyncio.wait_for(fired.wait(), 5)
    task.cancel()


# -- next_deadline --------------------------------------------------------------------
SPEC = KernelSessionSpec(session_id="abcd", owner={"access_key": "AK"}, image="python:3.6")
LIMITS = {"idle_timeout": 600, "start_deadline": 300, "retention": 3600}
RUNNING = KernelFacts(name="s-r0-0", scheduled=True, pulled=True, ready=True, ran=True)


def running(when: datetime) -> KernelSessionStatus:
    return advance(KernelSessionStatus(created_at=when), SPEC, [RUNNING], [], when)


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        (SPEC, KernelSessionStatus(), None),  # not created yet: the start is an event's work
        (SPEC, advance(KernelSessionStatus(created_at=T), SPEC, [], [], T), at(300)),  # pending
        (  # scheduled: from kernel_preparing
            SPEC,
            advance(
                KernelSessionStatus(created_at=T),
                SPEC,
                [KernelFacts(name="s-r0-0", scheduled=True)],
                [],
                at(5),
            ),
            at(305),
        ),
        (SPEC, running(T), at(600)),  # idle since it started
        (SPEC, running(T).model_copy(update={"last_access_at": at(100)}), at(700)),  # an access moves it
        (SPEC.model_copy(update={"idle_timeout_seconds": 0}), running(T), None),  # no idle timeout
        (SPEC.model_copy(update={"type": "batch", "startup_command": "x"}), running(T), None),
        (
            SPEC,
            terminate(running(T), Ending(Reason.USER_REQUESTED, Result.UNDEFINED, "bye"), at(50)),
            at(3650),
        ),  # retention
    ],
)
def test_next_deadline(
    spec: KernelSessionSpec, status: KernelSessionStatus, expected: datetime | None
) -> None:
    assert next_deadline(spec, status, **LIMITS) == expected


def test_nothing_is_overdue_before_the_next_deadline_and_something_is_after() -> None:
    """The deadline is no later than overdue's verdict: the schedule never misses one."""
    for status in (running(T), running(T).model_copy(update={"last_access_at": at(100)})):
        due = next_deadline(SPEC, status, **LIMITS)
        assert due is not None
        limits = {"idle_timeout": 600, "start_deadline": 300}
        assert overdue(SPEC, status, [], due - timedelta(seconds=1), **limits) is None
        assert overdue(SPEC, status, [], due + timedelta(seconds=1), **limits) is not None


def test_a_restart_generation_has_its_own_start_deadline() -> None:
    spec = SPEC.model_copy(update={"restart_count": 1})
    restarting = begin_restart(running(T), spec, at(1000))
    assert next_deadline(spec, restarting, **LIMITS) == at(1300)


@pytest.mark.parametrize(("failures", "delay"), [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (50, 60)])
def test_retries_back_off_to_a_minute(failures: int, delay: float) -> None:
    assert retry_delay(failures) == delay


@pytest.mark.parametrize(
    ("status", "refused"),
    [
        (400, True),
        (403, True),
        (422, True),
        (404, False),
        (409, False),
        (429, False),
        (500, False),
        (503, False),
    ],
)
def test_a_refusal_for_good_ends_a_session_at_once(status: int, refused: bool) -> None:
    assert creation_refused(status) is refused


@pytest.mark.parametrize(
    ("failed", "attempts", "gives_up"), [(1, 6, False), (5, 6, False), (6, 6, True), (1, 1, True)]
)
def test_pod_creation_gives_up_after_its_attempts(failed: int, attempts: int, gives_up: bool) -> None:
    assert creation_gives_up(failed, attempts) is gives_up


BATCH = SPEC.model_copy(update={"type": "batch", "startup_command": "python train.py"})


@pytest.mark.parametrize(
    ("spec", "batch_timeout", "expected"),
    [
        (BATCH, 7200, at(7200)),  # from the start of its run
        (BATCH, 0, None),  # no limit
        (BATCH.model_copy(update={"batch_timeout_seconds": 7200}), 0, at(7200)),  # its own limit
        (SPEC, 7200, at(600)),  # interactive: the idle timeout, not this
    ],
)
def test_a_batch_session_has_a_run_time_limit(
    spec: KernelSessionSpec, batch_timeout: int, expected: datetime | None
) -> None:
    status = advance(KernelSessionStatus(created_at=T), spec, [RUNNING], [], T)
    assert next_deadline(spec, status, **LIMITS, batch_timeout=batch_timeout) == expected
    limits = {"idle_timeout": 0, "start_deadline": 300, "batch_timeout": batch_timeout}
    past = overdue(spec, status, [], at(7201), **limits)
    if spec.type == "batch" and (batch_timeout or spec.batch_timeout_seconds):
        assert past == Ending(Reason.EXEC_TIMEOUT, Result.FAILURE, "ran longer than 7200s")
        assert overdue(spec, status, [], at(7199), **limits) is None
    else:
        assert past is None
