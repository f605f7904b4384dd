"""Sessions per keypair, live and ended alike (pure; fed by the sessions informer).

An ended session stays until its retention passes, and every one is an object in etcd
and in each service's memory, so a keypair may hold at most so many at once
(``KUBERNEL_API_SESSIONS_PER_KEYPAIR``), whatever its ``concurrentSessions``.
"""

from __future__ import annotations

from collections import Counter

from kubernel.jsondict import JsonDict

Key = tuple[str, str]
Change = tuple[JsonDict | None, JsonDict | None]  # (before, after), as the informer publishes them


def owner_of(body: JsonDict) -> str:
    return str(((body.get("spec") or {}).get("owner") or {}).get("accessKey") or "")


class Holdings:
    def __init__(self) -> None:
        self._owner: dict[Key, str] = {}
        self._held: Counter[str] = Counter()

    def held(self, access_key: str) -> int:
        return self._held[access_key]

    def on_change(self, _previous: str, _rv: str, changes: list[Change]) -> None:
        for old, new in changes:
            meta = (new or old or {}).get("metadata") or {}
            key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
            before = self._owner.pop(key, None)
            if before is not None:
                self._held[before] -= 1
                if not self._held[before]:
                    del self._held[before]
            if new is not None:
                owner = self._owner[key] = owner_of(new)
                self._held[owner] += 1
