"""Warm pools, the pure part: a KernelPool -> its kernel Pods; the Pods -> what to create and
delete; a session -> whether it may claim one, and the claim and resize patches.

A pool's Pod is a kernel Pod as ``pods.build_pod`` makes it for a session of the pool's image
and resources, less everything that names a session: no session labels, no owner's labels, no
``BACKENDAI_*`` variables, no runner Secret. The runner holds a bind token instead (this Pod's
own), and the session's identity and environment arrive with the claim (docs/pools.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernel import resource as r
from kubernel import runner as rn
from kubernel.images import ResolvedImage
from kubernel.jsondict import JsonDict
from kubernel.model import KernelSessionSpec, Resources
from kubernel.pool import KernelPoolSpec
from kubernel.quantity import parse_quantity

from . import pods as builders
from .facts import kernel_facts  # the same reading of a Pod as a session's

COLD_ENVIRON_PREFIXES = ("PYTHON", "LD_", "LC_")
COLD_ENVIRON_NAMES = frozenset({"LANG", "LANGUAGE"})
"""Variables the interpreter reads only when it starts (its paths, hash seed, encodings, the
dynamic loader): a session that sets one starts cold, since a warm interpreter started without."""
POD_NAME_SUFFIX = 6


@dataclass(frozen=True)
class PoolPod:
    """What one of a pool's Pods says, for the pool's bookkeeping."""

    name: str
    template: str
    ready: bool
    ended: bool  # failed or exited: never claimed, replaced
    deleting: bool
    resource_version: str
    address: str | None


@dataclass(frozen=True)
class Plan:
    create: int
    delete: list[str]


def pool_labels(pool: str, template: str) -> dict[str, str]:
    return {
        r.LABEL_NAME: "kernel",
        r.LABEL_INSTANCE: pool,
        r.LABEL_PART_OF: "kubernel",
        r.LABEL_MANAGED_BY: r.MANAGED_BY,
        r.LABEL_COMPONENT: "kernel",
        r.LABEL_POOL: pool,
        r.LABEL_POOL_TEMPLATE: template,
    }


def pod_template(spec: KernelPoolSpec, image: ResolvedImage) -> JsonDict:
    """The Pod spec of the pool's kernels (no name, no token): its hash is the template's."""
    limits = builders.kernel_limits(spec.resources, image)
    volumes, mounts = builders.scratch_fields(image.security)
    pod_spec: JsonDict = {
        "restartPolicy": "Never",
        "hostname": builders.hostname(0),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": builders.pod_security_context(image.security),
        "containers": [
            {
                "name": r.KERNEL_CONTAINER,
                "image": image.image,
                **({"command": list(image.command)} if image.command else {}),
                "workingDir": builders.HOME,
                "env": rn.runner_env(),
                "resources": builders.container_resources(limits, image.guarantee),
                "resizePolicy": builders.RESIZE_POLICY,
                "volumeMounts": mounts,
                "securityContext": builders.container_security_context(image.security),
                **builders.runner_container_fields(),
            }
        ],
        "volumes": volumes,
    }
    pod_spec.update(builders.scheduling_fields(image.scheduling))
    return pod_spec


def template_hash(template: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def pod_name(pool: str, suffix: str) -> str:
    """``<pool>-w<suffix>``: the ``w`` keeps it from ever reading as a session's
    ``<session>-r<restart>-<index>`` (handlers.POD_NAME), whatever the pool's name."""
    return f"{pool[:50]}-w{suffix[:POD_NAME_SUFFIX]}"


def build_pool_pod(
    owner: Mapping[str, Any], template: Mapping[str, Any], name: str, bind_token: str
) -> JsonDict:
    """One kernel Pod of the KernelPool ``owner`` (its body), named ``name``, owned by it."""
    meta = owner["metadata"]
    spec = json.loads(json.dumps(template))  # a deep copy
    spec["containers"][0]["env"].append({"name": rn.BIND_TOKEN_ENV, "value": bind_token})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": pool_labels(meta["name"], template_hash(template)),
            "ownerReferences": [_controller(r.POOL_KIND, meta)],
        },
        "spec": spec,
    }


def _controller(kind: str, meta: Mapping[str, Any]) -> JsonDict:
    return {
        "apiVersion": r.API_VERSION,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pool_pod(pod: Mapping[str, Any]) -> PoolPod:
    facts = kernel_facts(pod)
    meta = pod.get("metadata") or {}
    phase = (pod.get("status") or {}).get("phase")
    return PoolPod(
        name=meta.get("name", ""),
        template=(meta.get("labels") or {}).get(r.LABEL_POOL_TEMPLATE, ""),
        ready=facts.ready and not facts.deleting,
        ended=facts.exit_code is not None
        or facts.evicted
        or bool(facts.pull_failure or facts.create_failure)
        or phase in ("Failed", "Succeeded"),
        deleting=facts.deleting,
        resource_version=meta.get("resourceVersion", ""),
        address=facts.runner_address,
    )


def plan(desired: int, template: str, pods: Iterable[PoolPod], max_starting: int) -> Plan:
    """What brings the pool to ``desired`` current kernels: ended and outdated ones go (a
    changed template rolls the idle kernels; claimed ones are no longer the pool's), extra
    ones go (starting first), and new ones come, at most ``max_starting`` starting at once."""
    live = [p for p in pods if not p.deleting]  # on their way out already
    delete = [p.name for p in live if p.ended or p.template != template]
    current = [p for p in live if not p.ended and p.template == template]
    excess = len(current) - desired
    if excess > 0:
        by_readiness = sorted(current, key=lambda p: (p.ready, p.name))  # starting ones first
        delete += [p.name for p in by_readiness[:excess]]
        return Plan(0, delete)
    starting = sum(1 for p in current if not p.ready)
    return Plan(max(0, min(desired - len(current), max_starting - starting)), delete)


@dataclass(frozen=True)
class ColdStart:
    """Why a session of a pooled image started cold: ``code`` (a short fixed word, the
    misses metric's label) and ``message`` (the status's words)."""

    code: str
    message: str


def cold_start_reason(spec: KernelSessionSpec, pool: KernelPoolSpec) -> ColdStart | None:
    """Why the session cannot take one of the pool's kernels, or None if it can (pure).
    The image itself is compared apart: the template hashes must match."""
    if spec.restart_count:
        return ColdStart("restart", "a restart starts new kernels")
    if spec.cluster_size > 1:
        return ColdStart("cluster", "multi-kernel sessions start cold")
    if spec.mounts:
        return ColdStart("mounts", "folders cannot be mounted into a running Pod")
    if spec.type == "batch" and spec.startup_command:
        return ColdStart("batch-command", "a batch command replaces the runner")
    cold = sorted(k for k in spec.environ if k.startswith(COLD_ENVIRON_PREFIXES) or k in COLD_ENVIRON_NAMES)
    if cold:
        return ColdStart("environ", f"environ sets {cold[0]}, which the interpreter reads only at its start")
    if spec.resources.gpu != pool.resources.gpu:
        return ColdStart("gpu", "GPUs cannot be resized in place")
    if parse_quantity(spec.resources.memory) < parse_quantity(pool.resources.memory):
        return ColdStart("memory", "memory below the pool's cannot be resized in place")
    return None


def needs_resize(session: Resources, pool: Resources) -> bool:
    return (parse_quantity(session.cpu), parse_quantity(session.memory)) != (
        parse_quantity(pool.cpu),
        parse_quantity(pool.memory),
    )


def claim_patch(
    pool: str, pod: PoolPod, session: str, spec: KernelSessionSpec, owner: Mapping[str, Any]
) -> JsonDict:
    """The merge patch that makes a pool's Pod the session's main kernel: its labels, and the
    KernelSession as its only owner. The resourceVersion makes it fail (409) if anyone else
    changed the Pod since it was read: two claims never win one Pod."""
    labels: dict[str, str | None] = {
        **builders.session_labels(session, spec),
        r.LABEL_INSTANCE: session,
        r.LABEL_ROLE: "main",
        r.LABEL_INDEX: "0",
        r.LABEL_RESTART: str(spec.restart_count),
        r.LABEL_POOL: None,  # no longer the pool's
        r.LABEL_POOL_TEMPLATE: None,
        r.LABEL_CLAIMED_FROM: pool,
    }
    return {
        "metadata": {
            "resourceVersion": pod.resource_version,
            "labels": labels,
            "ownerReferences": [_controller(r.KIND, owner["metadata"])],
        }
    }


def resize_patch(resources: Resources, image: ResolvedImage) -> JsonDict:
    """The ``pods/resize`` patch that gives a claimed kernel the session's limits, and the
    image table's guarantee of them as requests."""
    wanted = builders.container_resources(builders.kernel_limits(resources, image), image.guarantee)
    cpu_memory = {
        part: {k: v for k, v in values.items() if k in ("cpu", "memory")} for part, values in wanted.items()
    }
    return {"spec": {"containers": [{"name": r.KERNEL_CONTAINER, "resources": cpu_memory}]}}


def resize_state(pod: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    """``done`` once the kubelet runs the container with ``wanted`` (a resize patch's
    resources), ``refused`` if it says it cannot (Infeasible, Deferred: the node has no room,
    or an error), else ``pending`` (pure)."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodResizePending" and condition.get("status") == "True":
            return "refused"  # Infeasible or Deferred: either way not now, so the session goes cold
        if condition.get("type") == "PodResizeInProgress" and condition.get("reason") == "Error":
            return "refused"
    target = wanted["spec"]["containers"][0]["resources"]
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != r.KERNEL_CONTAINER:
            continue
        actual = status.get("resources") or {}
        if _same(actual.get("limits"), target["limits"]) and _same(
            actual.get("requests"), target["requests"]
        ):
            return "done"
    return "pending"


def limits_applied(figures: Mapping[str, Any], resources: Resources) -> bool:
    """The runner's ``/stats`` say the container runs under ``resources``' CPU and memory
    limits: the kubelet has resized it, whether or not its status says so yet (pure)."""
    cpu = parse_quantity(resources.cpu) * 1000
    memory = parse_quantity(resources.memory)
    return figures.get("cpu_limit_millis") == int(cpu) and figures.get("mem_limit_bytes") == int(memory)


def _same(actual: Mapping[str, str] | None, wanted: Mapping[str, str]) -> bool:
    if not actual:
        return False
    return all(k in actual and parse_quantity(actual[k]) == parse_quantity(v) for k, v in wanted.items())


def bind_document(spec: KernelSessionSpec, token: str) -> JsonDict:
    """What the runner binds to: the session's token, who it is for, and its environment
    (with the ``BACKENDAI_*`` variables a cold kernel has in its Pod spec)."""
    environ = {
        **spec.environ,
        "BACKENDAI_SESSION_ID": spec.session_id,
        "BACKENDAI_KERNEL_ROLE": "main",
        "BACKENDAI_CLUSTER_SIZE": "1",
        "BACKENDAI_CLUSTER_HOST": builders.hostname(0),
    }
    return {
        "token": token,
        "sessionId": spec.session_id,
        "ownerAccessKey": spec.owner.access_key,
        "environ": dict(sorted(environ.items())),
    }
