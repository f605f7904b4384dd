"""What the Pod and Event watches have shown this process (in memory; no I/O).

A reconcile used to list the session's Pods and their kubelet Events on every
trigger: 2-3 of its 4-5 API calls (make bench, docs/performance.md). The watches
already deliver both, so their latest word is kept here, per session, as
``KernelFacts`` (small) rather than whole Pods.

An absence proves nothing: a Pod created a moment ago, or before a restart, may
not have been delivered yet. ``kernels`` therefore answers ``None`` unless every
Pod the status records is present, and the caller lists them from the API server
instead; the same holds for a Pod that ran before its ``Pulled`` Event arrived.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from kubernel import resource as r

from .facts import KernelFacts, kernel_facts

Key = tuple[str, str]  # (namespace, KernelSession name)


@dataclass
class _Pod:
    restart: str
    facts: KernelFacts  # from the Pod alone; kubelet reasons are added on reading
    reconciled: KernelFacts | None = None  # the facts the last successful reconcile used


@dataclass
class _Session:
    pods: dict[str, _Pod] = field(default_factory=dict)
    reasons: dict[str, frozenset[str]] = field(default_factory=dict)  # Pod name -> kubelet Event reasons
    problems: dict[str, str] = field(default_factory=dict)  # Pod name -> the latest start-up Warning


def with_reasons(facts: KernelFacts, reasons: Iterable[str]) -> KernelFacts:
    found = set(reasons)
    return replace(facts, pulling="Pulling" in found, pulled="Pulled" in found)


class Observed:
    def __init__(self) -> None:
        self._sessions: dict[Key, _Session] = {}

    def __len__(self) -> int:
        """How many sessions are remembered."""
        return len(self._sessions)

    def pod_event(self, key: Key, event_type: str | None, pod: dict[str, Any]) -> bool:
        """Record a Pod event. True if it may change the lifecycle: the Pod is gone, or its
        facts differ from those the last successful reconcile of the session used."""
        meta = pod.get("metadata") or {}
        name = meta.get("name", "")
        if event_type == "DELETED":
            if key in self._sessions:  # a forgotten session is not brought back
                self._sessions[key].pods.pop(name, None)
                self._sessions[key].reasons.pop(name, None)
                self._sessions[key].problems.pop(name, None)
            return True
        session = self._sessions.setdefault(key, _Session())
        facts = kernel_facts(pod)
        known = session.pods.get(name)
        restart = (meta.get("labels") or {}).get(r.LABEL_RESTART, "0")
        if known is None:
            session.pods[name] = known = _Pod(restart, facts)
        known.restart, known.facts = restart, facts
        return known.reconciled != facts

    def reason_event(self, key: Key, pod: str, reason: str) -> bool:
        """Record a kubelet Event reason of a known Pod; True if new for that Pod."""
        session = self._sessions.get(key)
        if session is None or pod not in session.pods:
            return False  # not ours, or not delivered yet: a reconcile lists Events then
        reasons = session.reasons.get(pod, frozenset())
        if reason in reasons:
            return False
        session.reasons[pod] = reasons | {reason}
        return True

    def start_problem(self, key: Key, pod: str, problem: str) -> None:
        """Record a kubelet Warning that keeps a known Pod from starting (the latest wins)."""
        session = self._sessions.get(key)
        if session is not None and pod in session.pods:
            session.problems[pod] = problem[:1024]

    def kernels(self, key: Key, restart: str, recorded: Iterable[str]) -> list[KernelFacts] | None:
        """The facts of the session's Pods of one restart generation, or None when the
        watch has not shown every Pod the status records (then list them)."""
        session = self._sessions.get(key)
        if session is None:
            return None
        pods = {name: p for name, p in session.pods.items() if p.restart == restart}
        if not pods or any(name not in pods for name in recorded):
            return None
        return [
            replace(
                with_reasons(p.facts, session.reasons.get(name, ())), start_problem=session.problems.get(name)
            )
            for name, p in sorted(pods.items())
        ]

    def running_pods(self, key: Key) -> bool:
        """Whether the watch shows Pods of the session that are not being deleted."""
        session = self._sessions.get(key)
        return session is not None and any(not p.facts.deleting for p in session.pods.values())

    def reasons(self, key: Key, pod: str) -> frozenset[str]:
        session = self._sessions.get(key)
        return session.reasons.get(pod, frozenset()) if session else frozenset()

    def reconciled(self, key: Key, kernels: Iterable[KernelFacts]) -> None:
        """A reconcile succeeded with these facts: Pod events repeating them can be skipped."""
        session = self._sessions.get(key)
        for facts in kernels:
            known = session.pods.get(facts.name) if session else None
            if known is not None:
                known.reconciled = replace(facts, pulling=False, pulled=False, start_problem=None)

    def forget(self, key: Key) -> None:
        self._sessions.pop(key, None)
