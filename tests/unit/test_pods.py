"""Pure builders: a session spec -> literal Pod and Service manifests; names."""

from __future__ import annotations

import re

import pytest

from kubernel.images import DEFAULT_TABLE, ImageNotAllowed, ImageTable
from kubernel.model import KernelSessionSpec
from kubernel.quantity import memory_kib
from kubernel.resource import owner_uid, owns, session_name
from kubernel_operator import pods
from kubernel_operator.pods import build_network_policy, build_pod, build_runner_secret, build_service

SPEC = KernelSessionSpec.model_validate(
    {
        "sessionId": "MySession-01",
        "owner": {"accessKey": "AKIA1", "domain": "default", "group": "lab"},
        "image": "python:3.6",
        "type": "batch",
        "startupCommand": "python train.py",
        "clusterSize": 2,
        "resources": {"cpu": "2", "memory": "4Gi", "gpu": 1},
        "environ": {"B": "2", "A": "1"},
        "mounts": [{"name": "mydata"}, {"name": "pkgs", "path": ".local/lib", "readOnly": True}],
        "restartCount": 3,
    }
)


def test_main_kernel_pod() -> None:
    image = DEFAULT_TABLE.resolve("python:3.6")
    labels = {
        "app.kubernetes.io/name": "kernel",
        "app.kubernetes.io/instance": "s1",
        "app.kubernetes.io/part-of": "kubernel",
        "app.kubernetes.io/managed-by": "kubernel",
        "kubernel.io/session": "s1",
        "kubernel.io/access-key": "AKIA1",
        "kubernel.io/domain": "default",
        "kubernel.io/group": "lab",
        "app.kubernetes.io/component": "kernel",
        "kubernel.io/kernel-role": "main",
        "kubernel.io/kernel-index": "0",
        "kubernel.io/restart": "3",
    }
    limits = {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "1Gi", "nvidia.com/gpu": "1"}
    assert build_pod("s1", SPEC, image, 0) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "s1-r3-0", "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "hostname": "main",
            "subdomain": "s1",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "runAsGroup": 1000,
                "fsGroup": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "kernel",
                    "image": "docker.io/lablup/python:3.6-ubuntu18.04",
                    "command": ["/bin/sh", "-c", "python train.py"],
                    "workingDir": "/home/work",
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "B", "value": "2"},
                        {"name": "BACKENDAI_SESSION_ID", "value": "MySession-01"},
                        {"name": "BACKENDAI_KERNEL_ROLE", "value": "main"},
                        {"name": "BACKENDAI_CLUSTER_SIZE", "value": "2"},
                        {"name": "BACKENDAI_CLUSTER_HOST", "value": "main"},
                    ],
                    "resources": {"requests": limits, "limits": limits},
                    "resizePolicy": [
                        {"resourceName": "cpu", "restartPolicy": "NotRequired"},
                        {"resourceName": "memory", "restartPolicy": "NotRequired"},
                    ],
                    "volumeMounts": [
                        {"name": "scratch-0", "mountPath": "/home/work"},
                        {"name": "scratch-1", "mountPath": "/tmp"},
                        {"name": "vfolder-0", "mountPath": "/home/work/mydata"},
                        {"name": "vfolder-1", "mountPath": "/home/work/.local/lib", "readOnly": True},
                    ],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "privileged": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
            "volumes": [
                {"name": "scratch-0", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "scratch-1", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "vfolder-0", "persistentVolumeClaim": {"claimName": "mydata"}},
                {"name": "vfolder-1", "persistentVolumeClaim": {"claimName": "pkgs", "readOnly": True}},
            ],
        },
    }


def test_sub_kernel_and_interactive_command() -> None:
    spec = SPEC.model_copy(update={"type": "interactive", "startup_command": None})
    pod = build_pod("s1", spec, DEFAULT_TABLE.resolve("python:3.6"), 1)
    assert pod["metadata"]["name"] == "s1-r3-1"
    assert pod["spec"]["hostname"] == "sub1"
    assert pod["spec"]["containers"][0]["command"] == ["sleep", "infinity"]


def test_headless_service_only_for_clusters() -> None:
    service = build_service("s1", SPEC)
    assert service["spec"] == {
        "clusterIP": "None",
        "publishNotReadyAddresses": True,
        "selector": {"kubernel.io/session": "s1"},
    }
    assert build_service("s1", SPEC.model_copy(update={"cluster_size": 1})) is None


@pytest.mark.parametrize(
    ("quantity", "kib"), [("1Gi", 1048576), ("512Mi", 524288), ("1G", 976562), ("2048", 2)]
)
def test_memory_kib(quantity: str, kib: int) -> None:
    assert memory_kib(quantity) == kib


def test_session_names_are_dns_labels_and_case_and_owner_sensitive() -> None:
    names = {session_name("AK1", "Abc_1.x"), session_name("AK1", "abc_1.x"), session_name("AK2", "Abc_1.x")}
    assert len(names) == 3
    long = session_name("AK1", "A" * 64)
    for name in names | {long, session_name("AK", "____")}:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 45
    assert session_name("AK1", "Abc_1.x") == session_name("AK1", "Abc_1.x")
    assert (
        len(session_name("AK1", "x" * 64).rsplit("-", 1)[1]) >= 24
    )  # 96 bits: no collision can be searched for


@pytest.mark.parametrize(
    ("owner", "token", "mine"),
    [
        ("AK1", "Abc_1.x", True),
        ("AK2", "Abc_1.x", False),
        ("AK1", "abc_1.x", False),
        ("AK1", "Abc-1.x", False),
    ],
)
def test_a_name_stands_for_an_owner_only_when_the_spec_says_so(owner: str, token: str, mine: bool) -> None:
    body = {"spec": {"sessionId": "Abc_1.x", "owner": {"accessKey": "AK1"}}}
    assert owns(body, owner, token) is mine


def test_image_table() -> None:
    table = ImageTable.model_validate(
        {
            "allowedRegistries": ["registry.example"],
            "aliases": {"py": {"image": "registry.example/py:3", "command": ["k"]}},
        }
    )
    assert table.resolve("py").command == ["k"]
    assert table.resolve("registry.example/x:1").image == "registry.example/x:1"
    with pytest.raises(ImageNotAllowed, match=r"docker\.io"):
        table.resolve("python:3")


SCHEDULING_TABLE = ImageTable.model_validate(
    {
        "allowedRegistries": ["registry.example"],
        "scheduling": {
            "nodeSelector": {"pool": "sim"},
            "tolerations": [{"key": "pool", "operator": "Exists", "effect": "NoSchedule"}],
        },
        "aliases": {
            "gpu": {
                "image": "registry.example/gpu:1",
                "scheduling": {
                    "nodeSelector": {"pool": "gpu"},
                    "imagePullSecrets": ["regcred"],
                    "runtimeClassName": "gvisor",
                    "priorityClassName": "sessions",
                    "tolerations": [
                        {"key": "gpu", "value": "yes", "effect": "NoExecute", "tolerationSeconds": 30}
                    ],
                },
            },
            "plain": {"image": "registry.example/plain:1", "scheduling": {}},
            "inherits": {"image": "registry.example/inherits:1"},
        },
    }
)
SIM = {
    "nodeSelector": {"pool": "sim"},
    "tolerations": [{"key": "pool", "operator": "Exists", "effect": "NoSchedule"}],
}


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("registry.example/any:1", SIM),  # an allowed registry: the table's scheduling
        ("inherits", SIM),  # an alias without its own: the table's
        ("plain", {}),  # an alias with an empty one: anywhere
        (
            "gpu",
            {
                "nodeSelector": {"pool": "gpu"},
                "imagePullSecrets": [{"name": "regcred"}],
                "runtimeClassName": "gvisor",
                "priorityClassName": "sessions",
                "tolerations": [
                    {
                        "key": "gpu",
                        "operator": "Equal",
                        "value": "yes",
                        "effect": "NoExecute",
                        "tolerationSeconds": 30,
                    }
                ],
            },
        ),
    ],
)
def test_scheduling_from_the_image_table(requested: str, expected: dict) -> None:
    spec = SPEC.model_copy(update={"image": requested})
    pod_spec = build_pod("s1", spec, SCHEDULING_TABLE.resolve(requested), 0)["spec"]
    fields = {"nodeSelector", "tolerations", "imagePullSecrets", "runtimeClassName", "priorityClassName"}
    assert {k: v for k, v in pod_spec.items() if k in fields} == expected


def test_a_pinned_image_takes_its_alias_scheduling_from_the_current_table() -> None:
    assert (
        SCHEDULING_TABLE.pinned("gpu", "registry.example/gpu@sha256:1").scheduling.runtime_class_name
        == "gvisor"
    )
    assert SCHEDULING_TABLE.pinned("gone", "registry.example/x:1").scheduling.node_selector == {"pool": "sim"}


def test_a_session_runs_its_pinned_image_else_what_its_request_resolves_to() -> None:
    assert (
        SCHEDULING_TABLE.to_run("gpu", "registry.example/gpu@sha256:1").image
        == "registry.example/gpu@sha256:1"
    )
    assert SCHEDULING_TABLE.to_run("gpu", None) == SCHEDULING_TABLE.resolve("gpu")
    with pytest.raises(ImageNotAllowed):
        SCHEDULING_TABLE.to_run("elsewhere.example/x:1", None)


@pytest.mark.parametrize(
    "bad",
    [
        {"runtimeClassName": "Not_A_Name"},
        {"tolerations": [{"operator": "Maybe"}]},
        {"imagePullSecrets": [""]},
        {"nodeSelectors": {}},
    ],
)
def test_scheduling_rejects_what_kubernetes_would(bad: dict) -> None:
    with pytest.raises(ValueError):
        ImageTable.model_validate({"scheduling": bad})


RUNNER_TABLE = ImageTable.model_validate(
    {
        "allowedRegistries": ["registry.test"],
        "aliases": {
            "python:3.6": {"image": "registry.test/kubernel/python:3.11", "command": [], "runner": True}
        },
    }
)


def test_a_runner_image_gets_the_identity_secret_port_and_readiness() -> None:
    spec = SPEC.model_copy(update={"type": "interactive", "startup_command": None, "mounts": []})
    pod = build_pod("s1", spec, RUNNER_TABLE.resolve("python:3.6"), 0)
    container = pod["spec"]["containers"][0]
    assert "command" not in container  # the image's entrypoint: the runner
    assert container["ports"] == [{"name": "runner", "containerPort": 2001, "protocol": "TCP"}]
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/health?wait=8", "port": "runner"},
        "periodSeconds": 1,
        "timeoutSeconds": 10,
        "failureThreshold": 3,
    }
    assert container["volumeMounts"][-1] == {
        "name": "runner-identity",
        "mountPath": "/var/run/kubernel/identity",
        "readOnly": True,
    }
    # Readable by the kernel's group only (fsGroup): the runner is not root.
    assert pod["spec"]["volumes"][-1] == {
        "name": "runner-identity",
        "secret": {"secretName": "s1-runner", "defaultMode": 0o440},
    }
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["KUBERNEL_RUNNER_PORT"] == "2001" and "KUBERNEL_RUNNER_UID" not in env
    assert env["KUBERNEL_RUNNER_IDENTITY"] == "/var/run/kubernel/identity"


@pytest.mark.parametrize(
    ("table", "spec"),
    [
        (DEFAULT_TABLE, SPEC.model_copy(update={"type": "interactive", "startup_command": None})),
        (RUNNER_TABLE, SPEC),  # a batch command replaces the runner
    ],
)
def test_no_runner_no_runner_wiring(table: ImageTable, spec: KernelSessionSpec) -> None:
    container = build_pod("s1", spec, table.resolve("python:3.6"), 0)["spec"]["containers"][0]
    assert "ports" not in container and "readinessProbe" not in container
    assert not any(e["name"].startswith("KUBERNEL_RUNNER") for e in container["env"])


def test_runner_secret() -> None:
    assert build_runner_secret("s1", SPEC, "tok") == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "s1-runner",
            "labels": {
                "app.kubernetes.io/name": "kernel",
                "app.kubernetes.io/instance": "s1",
                "app.kubernetes.io/part-of": "kubernel",
                "app.kubernetes.io/managed-by": "kubernel",
                "kubernel.io/session": "s1",
                "kubernel.io/access-key": "AKIA1",
                "kubernel.io/domain": "default",
                "kubernel.io/group": "lab",
                "app.kubernetes.io/component": "runner-identity",
            },
        },
        "type": "Opaque",
        "stringData": {
            "token": "tok",
            "identity.json": '{"environ": {"A": "1", "B": "2"}, "ownerAccessKey": "AKIA1", "sessionId": "MySession-01"}',
        },
    }


def test_the_owner_of_a_pod_is_its_kernelsession_uid() -> None:
    ref = {"apiVersion": "kubernel.io/v1alpha1", "kind": "KernelSession", "name": "s", "uid": "u1"}
    assert (
        owner_uid(
            {
                "metadata": {
                    "ownerReferences": [{"kind": "ReplicaSet", "apiVersion": "apps/v1", "uid": "x"}, ref]
                }
            }
        )
        == "u1"
    )
    assert owner_uid({"metadata": {"ownerReferences": [{**ref, "apiVersion": "other.io/v1"}]}}) is None
    assert owner_uid({"metadata": {}}) is None


RELAXED_TABLE = ImageTable.model_validate(
    {
        "allowedRegistries": ["registry.test"],
        "security": {
            "runAsUser": 2000,
            "scratch": "256Mi",
            "writablePaths": ["/tmp", "/var/tmp", "/home/work"],
        },
        "aliases": {
            "web": {
                "image": "registry.test/web:1",
                "security": {"readOnlyRootFilesystem": False, "netBindService": True, "writablePaths": []},
            },
            "plain": {"image": "registry.test/plain:1"},
        },
    }
)


@pytest.mark.parametrize(
    ("requested", "user", "group", "read_only", "added", "paths", "scratch"),
    [
        # The table's security: its user (group stays the default), its paths (the working
        # directory once), its scratch size.
        ("plain", 2000, 1000, True, None, ["/home/work", "/tmp", "/var/tmp"], "256Mi"),
        ("registry.test/other:2", 2000, 1000, True, None, ["/home/work", "/tmp", "/var/tmp"], "256Mi"),
        # An alias's security replaces the table's as a whole.
        ("web", 1000, 1000, False, ["NET_BIND_SERVICE"], ["/home/work"], "1Gi"),
    ],
)
def test_the_image_tables_security_shapes_the_pod(
    requested: str,
    user: int,
    group: int,
    read_only: bool,
    added: list[str] | None,
    paths: list[str],
    scratch: str,
) -> None:
    spec = SPEC.model_copy(update={"mounts": [], "image": requested})
    pod = build_pod("s1", spec, RELAXED_TABLE.resolve(requested), 0)["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsUser"] == user
    assert pod["securityContext"]["runAsGroup"] == pod["securityContext"]["fsGroup"] == group
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is read_only
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"].get("add") == added
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert [m["mountPath"] for m in container["volumeMounts"]] == paths
    assert {v["emptyDir"]["sizeLimit"] for v in pod["volumes"]} == {scratch}
    assert container["resources"]["limits"]["ephemeral-storage"] == scratch


@pytest.mark.parametrize(
    "security",
    [
        {"runAsUser": 0},  # root is not a relaxation the table can make
        {"runAsGroup": 0},
        {"writablePaths": ["tmp"]},  # relative
        {"writablePaths": ["/tmp/../etc"]},
        {"writablePaths": ["/proc/sys"]},
        {"writablePaths": ["/tmp/"]},
        {"scratch": "lots"},
        {"privileged": True},  # no such field
        {"capabilities": ["SYS_ADMIN"]},
    ],
)
def test_the_image_table_cannot_make_a_kernel_root_or_privileged(security: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ImageTable.model_validate({"security": security})


def test_a_cluster_sessions_kernels_may_reach_each_other_and_no_one_else() -> None:
    own = {
        "podSelector": {"matchLabels": {"kubernel.io/session": "s1", "app.kubernetes.io/component": "kernel"}}
    }
    policy = build_network_policy("s1", SPEC)
    assert policy["metadata"]["name"] == "s1-kernels"
    assert policy["metadata"]["labels"]["app.kubernetes.io/component"] == "network-policy"
    assert policy["spec"] == {
        **own,
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [own]}],
        "egress": [{"to": [own]}],
    }


@pytest.mark.parametrize(
    ("limits", "guarantee", "requests"),
    [
        (("1", "1Gi"), ("100%", "100%"), ("1", "1Gi")),  # the default: Guaranteed QoS
        (("1", "1Gi"), ("10%", "100%"), ("100m", "1Gi")),  # CPU over-committed, memory not
        (("2", "4Gi"), ("250m", "50%"), ("250m", "2147483648")),
        (("500m", "1Gi"), ("1", "2Gi"), ("500m", "1Gi")),  # an amount above the limit: the limit
        (("1m", "1Gi"), ("1%", "100%"), ("1m", "1Gi")),  # never below 1 millicore
    ],
)
def test_requests_are_the_image_tables_guarantee_of_the_limits(
    limits: tuple[str, str], guarantee: tuple[str, str], requests: tuple[str, str]
) -> None:
    from kubernel.images import Guarantee

    got = pods.container_resources(
        {"cpu": limits[0], "memory": limits[1], "ephemeral-storage": "1Gi"},
        Guarantee(cpu=guarantee[0], memory=guarantee[1]),
    )
    assert got == {
        "requests": {"cpu": requests[0], "memory": requests[1], "ephemeral-storage": "1Gi"},
        "limits": {"cpu": limits[0], "memory": limits[1], "ephemeral-storage": "1Gi"},
    }


@pytest.mark.parametrize("bad", ["0%", "101%", "ten", "-1", "1e3", "50 %"])
def test_a_guarantee_is_a_percentage_or_an_amount(bad: str) -> None:
    from pydantic import ValidationError

    from kubernel.images import Guarantee

    with pytest.raises(ValidationError):
        Guarantee(cpu=bad)
