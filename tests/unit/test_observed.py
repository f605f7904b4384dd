"""What the watches showed: when the operator may skip a reconcile or a listing."""

from __future__ import annotations

from kubernel import resource as r
from kubernel_operator.facts import KernelFacts
from kubernel_operator.observed import Observed

KEY = ("ns", "s")


def pod(
    name: str = "s-r0-0",
    restart: str = "0",
    index: str = "0",
    ready: bool = False,
    scheduled: bool = True,
    ip: str = "",
) -> dict:
    return {
        "metadata": {"name": name, "labels": {r.LABEL_RESTART: restart, r.LABEL_INDEX: index}},
        "status": {
            "podIP": ip,
            "conditions": [
                {"type": "PodScheduled", "status": "True" if scheduled else "False"},
                {"type": "Ready", "status": "True" if ready else "False"},
            ],
        },
    }


def test_a_pod_the_watch_has_not_shown_sends_the_caller_to_the_api_server() -> None:
    seen = Observed()
    assert seen.kernels(KEY, "0", ["s-r0-0"]) is None  # nothing seen yet
    seen.pod_event(KEY, "ADDED", pod())
    assert seen.kernels(KEY, "0", ["s-r0-0", "s-r0-1"]) is None  # one recorded Pod not delivered
    assert [k.name for k in seen.kernels(KEY, "0", ["s-r0-0"])] == ["s-r0-0"]
    assert seen.kernels(KEY, "1", []) is None  # no Pod of that restart generation seen


def test_kernels_are_those_of_the_generation_asked_for() -> None:
    seen = Observed()
    seen.pod_event(KEY, "ADDED", pod("s-r0-0", restart="0"))
    seen.pod_event(KEY, "ADDED", pod("s-r1-0", restart="1", ready=True))
    seen.pod_event(KEY, "ADDED", pod("s-r1-1", restart="1", index="1"))
    kernels = seen.kernels(KEY, "1", ["s-r1-0", "s-r1-1"])
    assert [(k.name, k.index, k.ready) for k in kernels] == [("s-r1-0", 0, True), ("s-r1-1", 1, False)]


def test_a_pod_event_matters_until_a_reconcile_used_its_facts() -> None:
    seen = Observed()
    assert seen.pod_event(KEY, None, pod())  # the initial listing counts
    assert seen.pod_event(KEY, "MODIFIED", pod())  # not reconciled yet (say the last one failed)
    seen.reconciled(KEY, seen.kernels(KEY, "0", []))
    assert not seen.pod_event(KEY, "MODIFIED", pod(ip="10.0.0.7"))  # nothing the lifecycle reads changed
    assert seen.pod_event(KEY, "MODIFIED", pod(ready=True))
    assert seen.pod_event(KEY, "DELETED", pod(ready=True))  # gone always matters
    assert seen.kernels(KEY, "0", []) is None


def test_kubelet_reasons_are_added_to_the_facts_once() -> None:
    seen = Observed()
    assert not seen.reason_event(KEY, "s-r0-0", "Pulling")  # Pod not seen: ignored (a reconcile lists)
    seen.pod_event(KEY, "ADDED", pod())
    assert seen.reason_event(KEY, "s-r0-0", "Pulling")
    assert not seen.reason_event(KEY, "s-r0-0", "Pulling")  # a repeat changes nothing
    assert seen.reason_event(KEY, "s-r0-0", "Pulled")
    [main] = seen.kernels(KEY, "0", ["s-r0-0"])
    assert (main.pulling, main.pulled) == (True, True)
    assert seen.reasons(KEY, "s-r0-0") == {"Pulling", "Pulled"}
    # Reasons are not Pod facts: having them does not make the next identical Pod event new.
    seen.reconciled(KEY, [main])
    assert not seen.pod_event(KEY, "MODIFIED", pod())


def test_forgetting_a_session_drops_everything_about_it() -> None:
    seen = Observed()
    seen.pod_event(KEY, "ADDED", pod())
    seen.reason_event(KEY, "s-r0-0", "Pulled")
    seen.forget(KEY)
    assert seen.kernels(KEY, "0", []) is None and seen.reasons(KEY, "s-r0-0") == frozenset()
    seen.reconciled(KEY, [KernelFacts(name="s-r0-0")])  # a late reconcile of a forgotten session is harmless


def test_a_late_deletion_does_not_bring_a_forgotten_session_back() -> None:
    seen = Observed()
    seen.pod_event(KEY, "ADDED", pod())
    seen.forget(KEY)
    assert seen.pod_event(KEY, "DELETED", pod())  # still worth a reconcile (which finds the session gone)
    assert len(seen) == 0


def test_a_start_problem_of_a_known_pod_is_kept_until_the_pod_goes() -> None:
    seen = Observed()
    seen.start_problem(KEY, "s-r0-0", "FailedCreatePodSandBox: early")  # not delivered yet: dropped
    seen.pod_event(KEY, "ADDED", pod())
    assert seen.kernels(KEY, "0", ["s-r0-0"])[0].start_problem is None
    seen.start_problem(KEY, "s-r0-0", "FailedCreatePodSandBox: first")
    seen.start_problem(KEY, "s-r0-0", "FailedCreatePodSandBox: " + "x" * 5000)  # the latest wins, bounded
    [kernel] = seen.kernels(KEY, "0", ["s-r0-0"])
    assert kernel.start_problem.startswith("FailedCreatePodSandBox: x") and len(kernel.start_problem) == 1024
    seen.reconciled(KEY, [kernel])
    assert seen.pod_event(KEY, "MODIFIED", pod()) is False  # the problem is not a Pod change
    seen.pod_event(KEY, "DELETED", pod())
    seen.pod_event(KEY, "ADDED", pod())
    assert seen.kernels(KEY, "0", ["s-r0-0"])[0].start_problem is None
