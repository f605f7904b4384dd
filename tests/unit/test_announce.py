"""What the operator tells of new lifecycle entries: log lines, and Events for milestones."""

from datetime import UTC, datetime

import pytest

from kubernel.lifecycle import LifecycleEvent, Result
from kubernel.model import KernelSessionStatus, LifecycleEntry
from kubernel_operator.announce import Announcement, announcements

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
