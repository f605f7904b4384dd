"""Warm pools, the pure part: the pool Pod against a literal, the plan as a matrix, who may
claim, the claim and resize patches, the resize's reading of a Pod."""

from __future__ import annotations

from typing import Any

import pytest

from kubernel import runner as rn
from kubernel.images import ImageTable
from kubernel.model import KernelSessionSpec
from kubernel.pool import KernelPoolSpec
from kubernel_operator import pools
from kubernel_operator.pools import PoolPod

TABLE = ImageTable.model_validate(
    {
        "allowedRegistries": ["registry.kubernel.test"],
        "guarantee": {"cpu": "10%"},
        "aliases": {"python:3.6": {"image": "registry.kubernel.test/kubernel/python:3.11", "runner": True}},
    }
)
IMAGE = TABLE.resolve("python:3.6")
POOL = KernelPoolSpec.model_validate(
    {"image": "python:3.6", "replicas": 2, "resources": {"cpu": "1", "memory": "1Gi"}}
)
OWNER = {"metadata": {"name": "py", "namespace": "ns", "uid": "pool-uid"}}


def session(**fields: Any) -> KernelSessionSpec:
    return KernelSessionSpec.model_validate(
        {"sessionId": "sess1", "owner": {"accessKey": "AKIA1"}, "image": "python:3.6", **fields}
    )


def test_a_pool_pod_is_a_kernel_with_no_session_in_it() -> None:
    template = pools.pod_template(POOL, IMAGE)
    pod = pools.build_pool_pod(OWNER, template, "py-wabc123", "t" * 64)
    digest = pools.template_hash(template)
    assert pod["metadata"] == {
        "name": "py-wabc123",
        "namespace": "ns",
        "labels": {
            "app.kubernetes.io/name": "kernel",
            "app.kubernetes.io/instance": "py",
            "app.kubernetes.io/part-of": "kubernel",
            "app.kubernetes.io/managed-by": "kubernel",
            "app.kubernetes.io/component": "kernel",
            "kubernel.io/pool": "py",
            "kubernel.io/pool-template": digest,
        },
        "ownerReferences": [
            {
                "apiVersion": "kubernel.io/v1alpha1",
                "kind": "KernelPool",
                "name": "py",
                "uid": "pool-uid",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    container = pod["spec"]["containers"][0]
    assert container["env"] == [*rn.runner_env(), {"name": rn.BIND_TOKEN_ENV, "value": "t" * 64}]
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "1Gi", "ephemeral-storage": "1Gi"},
        "limits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi"},
    }
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert all("secret" not in v for v in pod["spec"]["volumes"])  # no runner identity: none yet
    assert "BACKENDAI_SESSION_ID" not in str(pod)
    assert template["containers"][0]["env"] == rn.runner_env()  # the template was not changed


def test_the_template_hash_follows_what_the_kernel_runs() -> None:
    base = pools.template_hash(pools.pod_template(POOL, IMAGE))
    bigger = POOL.model_copy(update={"resources": POOL.resources.model_copy(update={"cpu": "2"})})
    other = TABLE.pinned("python:3.6", "registry.kubernel.test/kubernel/python:3.12")
    assert pools.template_hash(pools.pod_template(POOL, IMAGE)) == base
    assert pools.template_hash(pools.pod_template(bigger, IMAGE)) != base
    assert pools.template_hash(pools.pod_template(POOL, other)) != base


@pytest.mark.parametrize(
    "pool",
    ["py", "a-r1", "x" * 63, "pool-r12"],
)
def test_a_pool_pod_name_never_reads_as_a_session_pod(pool: str) -> None:
    from kubernel_operator.handlers import POD_NAME

    name = pools.pod_name(pool, "123456")
    assert POD_NAME.match(name) is None
    assert len(name) <= 63 and name.endswith("-w123456")


def pod(
    name: str, template: str = "T", *, ready: bool = True, ended: bool = False, deleting: bool = False
) -> PoolPod:
    return PoolPod(name, template, ready, ended, deleting, "1", "10.0.0.1:2001" if ready else None)


@pytest.mark.parametrize(
    ("desired", "held", "max_starting", "create", "delete"),
    [
        (2, [], 2, 2, []),  # empty: fill
        (5, [], 2, 2, []),  # bounded by max_starting
        (3, [pod("a", ready=False)], 2, 1, []),  # one starting already counts against the bound
        (2, [pod("a"), pod("b")], 2, 0, []),  # full
        (1, [pod("a"), pod("b", ready=False)], 2, 0, ["b"]),  # excess: the starting one goes first
        (1, [pod("a"), pod("b")], 2, 0, ["a"]),  # excess among ready: by name
        (2, [pod("a", "OLD"), pod("b")], 2, 1, ["a"]),  # a changed template rolls
        (2, [pod("a", ended=True), pod("b")], 2, 1, ["a"]),  # an ended one is replaced
        (2, [pod("a", deleting=True), pod("b")], 2, 1, []),  # already going: not deleted again
        (0, [pod("a"), pod("b", ready=False)], 2, 0, ["b", "a"]),  # scaled to zero
    ],
)
def test_plan(desired: int, held: list[PoolPod], max_starting: int, create: int, delete: list[str]) -> None:
    assert pools.plan(desired, "T", held, max_starting) == pools.Plan(create, delete)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({}, None),
        ({"resources": {"cpu": "2", "memory": "2Gi"}}, None),  # more: resized in place
        ({"environ": {"MY_SETTING": "1", "HOME_DIR": "x"}}, None),  # bound through the runner
        ({"type": "batch"}, None),  # a batch session without its own command runs the runner
        ({"restartCount": 1}, "restart"),
        ({"clusterSize": 2}, "cluster"),
        ({"mounts": [{"name": "data"}]}, "mounts"),
        ({"type": "batch", "startupCommand": "python x.py"}, "batch-command"),
        ({"environ": {"PYTHONPATH": "/x"}}, "environ"),
        ({"environ": {"LD_PRELOAD": "/x.so"}}, "environ"),
        ({"environ": {"LANG": "C"}}, "environ"),
        ({"resources": {"gpu": 1}}, "gpu"),
        ({"resources": {"memory": "512Mi"}}, "memory"),
    ],
)
def test_who_starts_cold(fields: dict[str, Any], code: str | None) -> None:
    reason = pools.cold_start_reason(session(**fields), POOL)
    assert (reason.code if reason else None) == code
    if reason is not None:
        assert reason.message


def test_the_cold_environ_message_names_the_variable() -> None:
    reason = pools.cold_start_reason(session(environ={"PYTHONHASHSEED": "0", "LC_ALL": "C"}), POOL)
    assert reason is not None and "LC_ALL" in reason.message


@pytest.mark.parametrize(
    ("resources", "resize"),
    [
        ({}, False),
        ({"cpu": "1000m", "memory": "1024Mi"}, False),
        ({"cpu": "2"}, True),
        ({"memory": "2Gi"}, True),
    ],
)
def test_needs_resize(resources: dict[str, str], resize: bool) -> None:
    assert pools.needs_resize(session(resources=resources).resources, POOL.resources) is resize


def test_the_claim_patch_makes_the_pod_the_sessions_main_kernel() -> None:
    spec = session(owner={"accessKey": "AKIA1", "domain": "d", "group": "g"})
    owner = {"metadata": {"name": "s1", "uid": "session-uid"}}
    assert pools.claim_patch("py", pod("py-w1"), "s1", spec, owner) == {
        "metadata": {
            "resourceVersion": "1",
            "labels": {
                "app.kubernetes.io/name": "kernel",
                "app.kubernetes.io/instance": "s1",
                "app.kubernetes.io/part-of": "kubernel",
                "app.kubernetes.io/managed-by": "kubernel",
                "kubernel.io/session": "s1",
                "kubernel.io/access-key": "AKIA1",
                "kubernel.io/domain": "d",
                "kubernel.io/group": "g",
                "kubernel.io/kernel-role": "main",
                "kubernel.io/kernel-index": "0",
                "kubernel.io/restart": "0",
                "kubernel.io/pool": None,
                "kubernel.io/pool-template": None,
                "kubernel.io/claimed-from": "py",
            },
            "ownerReferences": [
                {
                    "apiVersion": "kubernel.io/v1alpha1",
                    "kind": "KernelSession",
                    "name": "s1",
                    "uid": "session-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
    }


def test_the_resize_patch_sets_cpu_and_memory_under_the_guarantee() -> None:
    patch = pools.resize_patch(session(resources={"cpu": "2", "memory": "2Gi"}).resources, IMAGE)
    assert patch == {
        "spec": {
            "containers": [
                {
                    "name": "kernel",
                    "resources": {
                        "requests": {"cpu": "200m", "memory": "2Gi"},
                        "limits": {"cpu": "2", "memory": "2Gi"},
                    },
                }
            ]
        }
    }


WANTED = pools.resize_patch(session(resources={"cpu": "2", "memory": "2Gi"}).resources, IMAGE)


def status(
    conditions: tuple[dict[str, str], ...] = (), resources: dict[str, Any] | None = None
) -> dict[str, Any]:
    statuses = [{"name": "kernel", **({"resources": resources} if resources else {})}]
    return {"status": {"conditions": list(conditions), "containerStatuses": statuses}}


@pytest.mark.parametrize(
    ("pod_status", "state"),
    [
        (status(), "pending"),
        (status(({"type": "PodResizeInProgress", "status": "True"},)), "pending"),
        (
            status(
                resources={
                    "requests": {"cpu": "100m", "memory": "1Gi"},
                    "limits": {"cpu": "1", "memory": "1Gi"},
                }
            ),
            "pending",
        ),
        (
            status(
                resources={
                    "requests": {"cpu": "200m", "memory": "2Gi"},
                    "limits": {"cpu": "2", "memory": "2048Mi"},
                }
            ),
            "done",
        ),
        (status(({"type": "PodResizePending", "status": "True", "reason": "Infeasible"},)), "refused"),
        (status(({"type": "PodResizePending", "status": "True", "reason": "Deferred"},)), "refused"),
        (status(({"type": "PodResizeInProgress", "status": "True", "reason": "Error"},)), "refused"),
    ],
)
def test_resize_state(pod_status: dict[str, Any], state: str) -> None:
    assert pools.resize_state(pod_status, WANTED) == state


def test_the_bind_document_carries_the_sessions_environ_and_its_backendai_variables() -> None:
    document = pools.bind_document(session(environ={"A": "1"}), "tok")
    assert document == {
        "token": "tok",
        "sessionId": "sess1",
        "ownerAccessKey": "AKIA1",
        "environ": {
            "A": "1",
            "BACKENDAI_CLUSTER_HOST": "main",
            "BACKENDAI_CLUSTER_SIZE": "1",
            "BACKENDAI_KERNEL_ROLE": "main",
            "BACKENDAI_SESSION_ID": "sess1",
        },
    }


def ready_pod(template: str, *, ready: bool = True, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "py-w1",
            "resourceVersion": "7",
            "labels": {"kubernel.io/pool-template": template},
        },
        "spec": {"containers": [{"name": "kernel", "ports": [{"name": "runner", "containerPort": 2001}]}]},
        "status": {
            "phase": phase,
            "podIP": "10.1.2.3",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "kernel", "state": {"running": {}}}],
        },
    }


def test_pool_pod_reads_a_pod() -> None:
    assert pools.pool_pod(ready_pod("T")) == PoolPod("py-w1", "T", True, False, False, "7", "10.1.2.3:2001")
    assert pools.pool_pod(ready_pod("T", ready=False)).ready is False
    assert pools.pool_pod(ready_pod("T", phase="Failed")).ended is True


@pytest.mark.parametrize(
    ("figures", "applied"),
    [
        ({"cpu_limit_millis": 2000, "mem_limit_bytes": 2 << 30}, True),
        ({"cpu_limit_millis": 1000, "mem_limit_bytes": 2 << 30}, False),  # CPU not yet
        ({"cpu_limit_millis": 2000, "mem_limit_bytes": 1 << 30}, False),  # memory not yet
        ({"cpu_used": 5}, False),  # a runner that does not say
    ],
)
def test_limits_applied_reads_the_runners_figures(figures: dict[str, int], applied: bool) -> None:
    assert (
        pools.limits_applied(figures, session(resources={"cpu": "2", "memory": "2Gi"}).resources) is applied
    )
