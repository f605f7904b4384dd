"""What the operator tells of new lifecycle entries: log lines, and Events for milestones."""

from datetime import UTC, datetime, timedelta

import pytest

from kubernel.lifecycle import LifecycleEvent, Result
from kubernel.model import KernelSessionStatus, LifecycleEntry
from kubernel_operator.announce import Announcement, announcements, first_start_seconds
from kubernel_operator.metrics import OperatorMetrics

T = datetime(2026, 1, 1, tzinfo=UTC)


def _status(*entries: tuple[str, str, Result | None], message: str = "") -> KernelSessionStatus:
    lifecycle = [
        LifecycleEntry(seq=i, event=LifecycleEvent(e), reason=why, result=result, time=T)
        for i, (e, why, result) in enumerate(entries, start=1)
    ]
    return KernelSessionStatus(lifecycle=lifecycle, last_seq=len(lifecycle), message=message)


STARTED = [("kernel_enqueued", "", None), ("kernel_preparing", "", None), ("kernel_started", "", None)]


@pytest.mark.parametrize(
    ("old", "new", "told"),
    [
        (_status(), _status(*STARTED[:1]), [Announcement(1, "kernel_enqueued", None, False)]),
        (
            _status(*STARTED[:2]),
            _status(*STARTED),
            [Announcement(3, "kernel_started", "KernelStarted", False)],
        ),
        (_status(*STARTED), _status(*STARTED), []),
        (
            _status(*STARTED),
            _status(*STARTED, ("kernel_terminated", "user-requested", Result.UNDEFINED)),
            [
                Announcement(
                    4, "kernel_terminated (user-requested), result UNDEFINED", "KernelTerminated", False
                )
            ],
        ),
        (
            _status(*STARTED),
            _status(*STARTED, ("kernel_terminated", "", Result.FAILURE), message="exit code 3"),
            [Announcement(4, "kernel_terminated, result FAILURE: exit code 3", "KernelTerminated", True)],
        ),
        (
            _status(*STARTED),
            _status(*STARTED, ("kernel_terminated", "failed-to-start", Result.UNDEFINED)),
            [
                Announcement(
                    4, "kernel_terminated (failed-to-start), result UNDEFINED", "KernelTerminated", True
                )
            ],
        ),
    ],
)
def test_announcements(old: KernelSessionStatus, new: KernelSessionStatus, told: list[Announcement]) -> None:
    assert announcements(old, new) == told


@pytest.mark.parametrize(
    ("old", "new", "created", "seconds"),
    [
        (_status(*STARTED[:2]), _status(*STARTED), T - timedelta(seconds=2.5), 2.5),
        (_status(*STARTED[:2]), _status(*STARTED), None, None),  # no creation time known
        (_status(*STARTED), _status(*STARTED), T, None),  # not new
        (_status(), _status(*STARTED[:2]), T, None),  # not started yet
    ],
)
def test_the_time_to_start_is_taken_once(
    old: KernelSessionStatus, new: KernelSessionStatus, created: datetime | None, seconds: float | None
) -> None:
    assert first_start_seconds(created, old, new) == seconds


def test_a_restart_is_not_a_start() -> None:
    restarted = _status(*STARTED).model_copy(
        update={
            "lifecycle": [
                *_status(*STARTED).lifecycle,
                LifecycleEntry(seq=4, event=LifecycleEvent.STARTED, reason="restarting", restart=1, time=T),
            ],
            "last_seq": 4,
        }
    )
    assert first_start_seconds(T - timedelta(seconds=9), _status(*STARTED), restarted) is None


def test_sessions_are_counted_by_phase_at_each_scrape() -> None:
    metrics = OperatorMetrics()
    held = ["Running", "Running", "Pending"]
    metrics.count_sessions(lambda: iter(held))
    assert metrics.registry.get_sample_value("kubernel_operator_sessions", {"phase": "Running"}) == 2
    held.append("Terminated")
    assert metrics.registry.get_sample_value("kubernel_operator_sessions", {"phase": "Terminated"}) == 1
    assert metrics.registry.get_sample_value("kubernel_operator_sessions", {"phase": "Restarting"}) == 0


def test_a_wait_for_a_node_is_a_warning_with_the_schedulers_words() -> None:
    queued = _status(("kernel_enqueued", "", None))
    waiting = _status(("kernel_enqueued", "", None), ("kernel_pending", "no-available-instances", None))
    waiting.waiting = "0/1 nodes are available: 1 Insufficient cpu."
    assert announcements(queued, waiting) == [
        Announcement(
            2,
            "kernel_pending (no-available-instances): 0/1 nodes are available: 1 Insufficient cpu.",
            "KernelPending",
            True,
        )
    ]
