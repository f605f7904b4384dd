"""The ring of recent entries that serves resumes without a listing (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubernel_api.events import Cursor, Entry
from kubernel_api.recent import Recent

T = datetime(2026, 1, 1, tzinfo=UTC)


def entry(seq: int) -> tuple[Entry, bytes]:
    made = Entry("uid", "ns", "s", "sid", "AK", "default", "g", seq, "kernel_started", "", None, T)
    return made, f"message {seq}".encode()


def ring(max_entries: int = 100) -> Recent:
    recent = Recent(max_entries)
    recent.add("10", "11", [entry(1), entry(2), entry(3)])
    recent.add("11", "12", [])  # a status change with no new entry: kept, for the chain
    recent.add("12", "13", [entry(4)])
    return recent


def seqs(found: list[tuple[Entry, bytes]] | None) -> list[int] | None:
    return None if found is None else [e.seq for e, _ in found]


@pytest.mark.parametrize(
    ("cursor", "missed"),
    [
        (Cursor("13"), []),  # up to date
        (Cursor("11"), [4]),  # everything up to 11
        (Cursor("12"), [4]),  # a point of the chain with no entry of its own
        (Cursor("10", "11", 1), [2, 3, 4]),  # the first entry of step 10..11
        (Cursor("10", "11", 3), [4]),
        (Cursor("10"), None),  # before the ring: list
        (Cursor("9", "11", 1), None),  # a step this process never made (a catch-up's, another replica's)
        (Cursor("10", "11", 4), None),  # more entries than the step had
        (Cursor("99"), None),  # ahead of this process
    ],
)
def test_a_resume_inside_the_ring_is_served_from_it(cursor: Cursor, missed: list[int] | None) -> None:
    assert seqs(ring().after(cursor, current="13")) == missed


def test_the_messages_are_the_live_streams_bytes() -> None:
    assert [m for _, m in ring().after(Cursor("10", "11", 2), current="13") or []] == [
        b"message 3",
        b"message 4",
    ]


def test_the_ring_is_bounded_and_forgets_the_oldest_steps() -> None:
    recent = ring(max_entries=3)  # 3 + 1 (the empty step) + 1 entries: the first step goes
    assert [s.until for s in recent.steps] == ["12", "13"]
    assert recent.after(Cursor("10", "11", 1), current="13") is None
    assert seqs(recent.after(Cursor("12"), current="13")) == [4]


def test_keeping_nothing_lists_every_resume() -> None:
    recent = ring(max_entries=0)
    assert not recent.steps
    assert recent.after(Cursor("13"), current="13") is None
