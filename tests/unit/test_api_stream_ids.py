"""SSE ids: a client cut off after any message resumes with exactly what it lacks."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from kubernel_api.events import Cursor, entries_after, ids_for, message
from kubernel_api.informer import Informer
from kubernel_api.keypairs import Keypair, Role
from kubernel_api.metrics import Metrics
from kubernel_api.stream import Hub, StreamFilter

T0 = datetime(2026, 11, 21, tzinfo=UTC)
ROOT = Keypair(access_key="AKIAROOT", secret_key="s" * 20, role=Role.SUPERADMIN)
EVENTS = ["kernel_preparing", "kernel_pulling", "kernel_creating", "kernel_started"]


def body(uid: str, name: str, entries: int, rv: int) -> dict:
    return {
        "metadata": {"uid": uid, "namespace": "ns", "name": name, "resourceVersion": str(rv)},
        "spec": {"sessionId": name, "owner": {"accessKey": "AKIAU", "domain": "default", "group": "default"}},
        "status": {
            "lastSeq": entries,
            "lifecycle": [
                {
                    "seq": s,
                    "event": EVENTS[(s - 1) % 4],
                    "reason": "",
                    "time": (T0 + timedelta(seconds=s)).isoformat(),
                }
                for s in range(1, entries + 1)
            ],
        },
    }


def test_cursor_round_trip_and_rejects_foreign_ids() -> None:
    for raw in ("42", "41..42#1"):
        assert Cursor.decode(raw).encode() == raw
    for raw in ("", "abc", "1..2", "1..2#x", "-1"):
        with pytest.raises(ValueError):
            Cursor.decode(raw)
    assert ids_for("5", "6", 3) == ["5..6#1", "5..6#2", "6"]


def test_entries_after_counts_from_the_uid() -> None:
    old, new = body("u1", "a", 2, 1), body("u2", "a", 1, 2)  # same name, a new session
    assert [(e.uid, e.seq) for e in entries_after({"u1": 2}, [new])] == [("u2", 1)]
    assert [(e.uid, e.seq) for e in entries_after({"u1": 1}, [old])] == [("u1", 2)]


async def test_resume_after_every_message_is_exactly_once() -> None:
    # A history: single-entry events, multi-entry events and a re-list batch.
    steps = [
        [body("u1", "a", 1, 10)],
        [body("u1", "a", 3, 11)],
        [body("u2", "b", 2, 12)],
        [body("u1", "a", 4, 13), body("u2", "b", 4, 13), body("u3", "c", 2, 13)],  # re-list: three at once
        [body("u3", "c", 4, 14)],
    ]
    history: dict[str, list[dict]] = {"9": []}
    state: dict[str, dict] = {}
    informer = Informer("test", list_fn=None)  # type: ignore[arg-type]
    informer.loaded.set_result(None)
    hub = Hub(informer, Metrics(), queue_size=100)
    informer.resource_version = "9"
    live, _ = await hub.open(StreamFilter(ROOT), None, sessions_at=None)  # type: ignore[arg-type]
    subscriber = next(iter(hub.subscribers))
    for step in steps:
        rv = step[0]["metadata"]["resourceVersion"]
        changes = [(state.get(b["metadata"]["uid"]), b) for b in step]
        for b in step:
            state[b["metadata"]["uid"]] = b
        previous, informer.resource_version = informer.resource_version, rv
        informer.cache = {("ns", b["metadata"]["name"]): b for b in state.values()}
        history[rv] = list(state.values())
        hub.on_change(previous, rv, changes)
    received = subscriber.take()
    assert live == [] and len(received) == 4 + 4 + 4  # every entry once

    def parse(message: bytes) -> tuple[str, tuple[str, str]]:
        lines = dict(line.split(": ", 1) for line in message.decode().strip().split("\n"))
        return lines["id"], (json.loads(lines["data"])["sessionId"], lines["event"])

    everything = [parse(m)[1] for m in received]

    async def sessions_at(rv: str) -> list[dict]:
        return history[rv]

    for cut in range(len(received)):
        last_id = parse(received[cut])[0]
        preface, _ = await hub.open(StreamFilter(ROOT), Cursor.decode(last_id), sessions_at)
        got = [parse(m)[1] for m in received[: cut + 1]] + [parse(m)[1] for m in preface]
        # Exactly once, and in order within each session (across sessions, catch-up goes by time).
        assert sorted(got) == sorted(everything) and len(set(got)) == len(got), (cut, last_id)
        for session in "abc":
            assert [e for s, e in got if s == session] == [e for s, e in everything if s == session]
    await asyncio.sleep(0)


def test_message_reasons_as_the_reference_sends_them() -> None:
    """No reason is null; kernel_pulling names the image pulled (19.09's agent does)."""
    session = body("u1", "a", 4, 1)
    session["spec"]["resolvedImage"] = "registry.test/python:3.11"
    session["status"]["lifecycle"][3]["reason"] = "restarting"
    data = [json.loads(message(e, "1").decode().split("data: ", 1)[1]) for e in entries_after({}, [session])]
    assert [d["reason"] for d in data] == [None, "registry.test/python:3.11", None, "restarting"]
