"""Pod + kubelet Events -> what is true of one kernel (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernel.resource import LABEL_INDEX
from kubernel.runner import PORT_NAME as RUNNER_PORT_NAME

PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
CREATE_FAILURES = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


@dataclass(frozen=True)
class KernelFacts:
    """What the Pod of one kernel and its Events say."""

    name: str
    index: int = 0
    deleting: bool = False
    scheduled: bool = False
    unschedulable: str | None = None  # the scheduler's message while it cannot place the Pod
    pulling: bool = False  # the kubelet's Pulling Event
    pulled: bool = False  # the kubelet's Pulled Event (pulled, or already present)
    ready: bool = False
    ran: bool = False  # the container was running at some point
    pull_failure: str | None = None
    create_failure: str | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    evicted: bool = False
    created_at: str | None = None
    start_problem: str | None = (
        None  # the kubelet's latest Warning while starting (e.g. FailedCreatePodSandBox)
    )
    runner_address: str | None = None  # host:port of the code runner, once the Pod has an IP


def _conditions(pod: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}


def runner_address(pod: Mapping[str, Any]) -> str | None:
    """``<Pod IP>:<port>`` of the container port named ``runner``, if the Pod has both."""
    ip = (pod.get("status") or {}).get("podIP")
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == RUNNER_PORT_NAME and ip:
                return f"{ip}:{port['containerPort']}"
    return None


def kernel_facts(pod: Mapping[str, Any], event_reasons: Iterable[str] = ()) -> KernelFacts:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    conditions = _conditions(pod)
    scheduled = conditions.get("PodScheduled", {})
    ready = conditions.get("Ready", {}).get("status") == "True"
    disruption = conditions.get("DisruptionTarget", {})
    reasons = set(event_reasons)

    pull_failure = create_failure = None
    exit_code = None
    ran = ready
    oom = False
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated")
        if waiting.get("reason") in PULL_FAILURES:
            pull_failure = f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
        if waiting.get("reason") in CREATE_FAILURES:
            create_failure = f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
        if state.get("running") or cs.get("started"):
            ran = True
        if terminated:
            ran = True
            exit_code = int(terminated.get("exitCode", 0))
            oom = oom or terminated.get("reason") == "OOMKilled"
    evicted = status.get("reason") == "Evicted" or (
        disruption.get("status") == "True"
        and disruption.get("reason")
        in {"EvictionByEvictionAPI", "TerminationByKubelet", "PreemptionByScheduler"}
    )
    index = int((meta.get("labels") or {}).get(LABEL_INDEX, "0"))
    return KernelFacts(
        name=meta.get("name", ""),
        index=index,
        deleting=meta.get("deletionTimestamp") is not None,
        scheduled=scheduled.get("status") == "True",
        unschedulable=scheduled.get("message") if scheduled.get("reason") == "Unschedulable" else None,
        pulling="Pulling" in reasons,
        pulled="Pulled" in reasons,
        ready=ready,
        ran=ran,
        pull_failure=pull_failure,
        create_failure=create_failure,
        exit_code=exit_code,
        oom_killed=oom,
        evicted=evicted,
        created_at=meta.get("creationTimestamp"),
        runner_address=runner_address(pod),
    )
