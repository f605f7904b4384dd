"""Signatures seen inside the date window (pure; the clock is passed in).

A Backend.AI signature covers the method, path, date, host and content type, not
the body, and stays valid while its date is within the allowed clock skew. So a
signature already used is refused: whoever copied a request off the wire cannot
send it again, with this body or another. Bounded: beyond ``max_entries`` the
oldest are forgotten (and replays of those are no longer caught), which the
date window limits anyway.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class SeenSignatures:
    keep_seconds: float
    """How long a signature is remembered: as long as its date may be accepted."""
    max_entries: int = 200_000
    _until: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def first_use(self, signature: str, now: float) -> bool:
        """True the first time ``signature`` is seen within ``keep_seconds``, then False."""
        while self._until and next(iter(self._until.values())) <= now:
            self._until.popitem(last=False)
        if signature in self._until:
            return False
        self._until[signature] = now + self.keep_seconds
        while len(self._until) > self.max_entries:
            self._until.popitem(last=False)
        return True
