"""Lifecycle entries -> SSE messages, and the stream cursor (pure).

An SSE message id is a position in the history of all KernelSessions as the
API server numbers it (resourceVersion), so any API replica, or a restarted
one, can resume a stream with ``Last-Event-ID``:

- ``R``: the client has every entry present in the resources' state at R;
- ``A..B#k``: it has the state at A plus the first k entries of the A -> B
  delta, in canonical order (time, namespace, name, seq).

The live stream gives the last message of each watch event the plain id of
the event, and the others the ``A..B#k`` form, so a client cut off mid-batch
resumes exactly. Entries count from a session's uid, so a token reused for a
new session starts afresh.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from kubernel.jsondict import JsonDict
from kubernel.lifecycle import LifecycleEvent

_CURSOR = re.compile(r"^(?P<base>[0-9]{1,20})(?:\.\.(?P<until>[0-9]{1,20})#(?P<skip>[0-9]{1,9}))?$")


@dataclass(frozen=True)
class Cursor:
    base: str
    until: str | None = None
    skip: int = 0

    def encode(self) -> str:
        return self.base if self.until is None else f"{self.base}..{self.until}#{self.skip}"

    @classmethod
    def decode(cls, raw: str) -> Cursor:
        """Raises ValueError for anything we did not issue."""
        match = _CURSOR.match(raw.strip())
        if not match:
            raise ValueError("not a Last-Event-ID this API issued")
        return cls(match["base"], match["until"], int(match["skip"] or 0))


@dataclass(frozen=True)
class Entry:
    """One lifecycle entry of one session, with what filters and messages need."""

    uid: str
    namespace: str
    name: str
    session_id: str
    owner_access_key: str
    owner_domain: str
    group: str
    seq: int
    event: str
    reason: str
    result: str | None
    time: datetime


def last_seqs(bodies: Iterable[JsonDict]) -> dict[str, int]:
    return {b["metadata"]["uid"]: (b.get("status") or {}).get("lastSeq", 0) for b in bodies}


def entries_after(before: Mapping[str, int], after: Iterable[JsonDict]) -> list[Entry]:
    """Entries in ``after`` that ``before`` (uid -> last seq) had not, in canonical order."""
    found = []
    for body in after:
        meta, spec = body["metadata"], body.get("spec") or {}
        owner = spec.get("owner") or {}
        seen = before.get(meta["uid"], 0)
        for raw in (body.get("status") or {}).get("lifecycle") or []:
            if raw["seq"] > seen:
                reason = raw.get("reason") or ""
                if not reason and raw["event"] == LifecycleEvent.PULLING:
                    reason = spec.get("resolvedImage") or ""  # what 19.09's agent says: the image pulled
                found.append(
                    Entry(
                        uid=meta["uid"],
                        namespace=meta["namespace"],
                        name=meta["name"],
                        session_id=spec.get("sessionId", ""),
                        owner_access_key=owner.get("accessKey", ""),
                        owner_domain=owner.get("domain", "default"),
                        group=owner.get("group", "default"),
                        seq=raw["seq"],
                        event=raw["event"],
                        reason=reason,
                        result=raw.get("result"),
                        time=datetime.fromisoformat(raw["time"]),
                    )
                )
    found.sort(key=lambda e: (e.time, e.namespace, e.name, e.seq))
    return found


def ids_for(base: str, until: str, count: int, *, first: int = 0) -> list[str]:
    """Message ids for entries first..count-1 of the base -> until delta (the last one is ``until``)."""
    return [until if k == count else Cursor(base, until, k).encode() for k in range(first + 1, count + 1)]


def message(entry: Entry, message_id: str) -> bytes:
    # No reason is null, as Backend.AI's manager sends it (an ordinary start-up step).
    data: dict[str, object] = {
        "sessionId": entry.session_id,
        "ownerAccessKey": entry.owner_access_key,
        "reason": entry.reason or None,
    }
    if entry.event == LifecycleEvent.TERMINATED:
        data["result"] = entry.result or "UNDEFINED"
    return f"id: {message_id}\nevent: {entry.event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def comment(text: str) -> bytes:
    return f": {text}\n\n".encode()
