"""Pure builders: a KernelSession -> its Pods, headless Service, NetworkPolicy and runner-identity
Secret manifests."""

from __future__ import annotations

import json
import posixpath

from kubernel import folders
from kubernel import resource as r
from kubernel import runner as rn
from kubernel.images import Guarantee, ResolvedImage, Scheduling, Security
from kubernel.jsondict import JsonDict
from kubernel.model import KernelSessionSpec, Mount, Resources
from kubernel.quantity import guaranteed

HOME = rn.WORKDIR
KERNEL_CONTAINER = r.KERNEL_CONTAINER


def pod_name(session: str, restart: int, index: int) -> str:
    """``<session>-r<restart>-<index>``; index 0 is the main kernel. A restart
    gets new names so the new Pods never wait for the old ones to go."""
    return f"{session}-r{restart}-{index}"


def hostname(index: int) -> str:
    return "main" if index == 0 else f"sub{index}"


def mount_path(mount: Mount) -> str:
    """Inside the working directory (the operator's preflight refused anything else)."""
    return posixpath.join(HOME, folders.confined(mount.path or mount.name))


def session_labels(name: str, spec: KernelSessionSpec) -> dict[str, str]:
    return {
        r.LABEL_NAME: "kernel",
        r.LABEL_INSTANCE: name,
        r.LABEL_PART_OF: "kubernel",
        r.LABEL_MANAGED_BY: r.MANAGED_BY,
        r.LABEL_SESSION: name,
        r.LABEL_ACCESS_KEY: r.label_value(spec.owner.access_key),
        r.LABEL_DOMAIN: r.label_value(spec.owner.domain),
        r.LABEL_GROUP: r.label_value(spec.owner.group),
    }


def command_for(spec: KernelSessionSpec, image: ResolvedImage) -> list[str]:
    """The batch command, else the image table's; empty: the image's own entrypoint."""
    if spec.type == "batch" and spec.startup_command:
        return ["/bin/sh", "-c", spec.startup_command]
    return list(image.command)


def runs_runner(spec: KernelSessionSpec, image: ResolvedImage) -> bool:
    """The kernel runs the image's code runner: a runner image started with its own
    entrypoint (a batch command replaces it, and then there is nothing to reach)."""
    return image.runner and not command_for(spec, image)


def build_pod(name: str, spec: KernelSessionSpec, image: ResolvedImage, index: int) -> JsonDict:
    """The Pod of kernel ``index`` (0 = main) of session ``name`` (no owner yet: kopf.adopt sets it)."""
    restart = spec.restart_count
    limits = kernel_limits(spec.resources, image)
    env = [{"name": k, "value": v} for k, v in sorted(spec.environ.items())]
    env += [
        {"name": "BACKENDAI_SESSION_ID", "value": spec.session_id},
        {"name": "BACKENDAI_KERNEL_ROLE", "value": "main" if index == 0 else "sub"},
        {"name": "BACKENDAI_CLUSTER_SIZE", "value": str(spec.cluster_size)},
        {"name": "BACKENDAI_CLUSTER_HOST", "value": hostname(index)},
    ]
    read_only = [
        {"readOnly": True} if m.read_only else {} for m in spec.mounts
    ]  # false is the default: omitted
    volumes = [
        {"name": f"vfolder-{i}", "persistentVolumeClaim": {"claimName": m.name, **read_only[i]}}
        for i, m in enumerate(spec.mounts)
    ]
    mounts = [
        {"name": f"vfolder-{i}", "mountPath": mount_path(m), **read_only[i]}
        for i, m in enumerate(spec.mounts)
    ]
    scratch_volumes, scratch_mounts = scratch_fields(image.security)
    volumes = scratch_volumes + volumes
    mounts = scratch_mounts + mounts  # the working directory before the folders inside it
    runner: JsonDict = {}
    if runs_runner(spec, image):
        env += rn.runner_env()
        volumes.append(
            {"name": "runner-identity", "secret": {"secretName": rn.secret_name(name), "defaultMode": 0o440}}
        )
        mounts.append({"name": "runner-identity", "mountPath": rn.IDENTITY_DIR, "readOnly": True})
        runner = runner_container_fields()
    labels = {
        **session_labels(name, spec),
        r.LABEL_COMPONENT: "kernel",
        r.LABEL_ROLE: "main" if index == 0 else "sub",
        r.LABEL_INDEX: str(index),
        r.LABEL_RESTART: str(restart),
    }
    pod: JsonDict = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod_name(name, restart, index), "labels": labels},
        "spec": {
            "restartPolicy": "Never",  # a kernel that exits ends its session
            "hostname": hostname(index),
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": pod_security_context(image.security),
            "containers": [
                {
                    "name": KERNEL_CONTAINER,
                    "image": image.image,
                    **({"command": command} if (command := command_for(spec, image)) else {}),
                    "workingDir": HOME,
                    "env": env,
                    "resources": container_resources(limits, image.guarantee),
                    "resizePolicy": RESIZE_POLICY,
                    "volumeMounts": mounts,
                    "securityContext": container_security_context(image.security),
                    **runner,
                }
            ],
            "volumes": volumes,
        },
    }
    if spec.cluster_size > 1:
        pod["spec"]["subdomain"] = name  # <hostname>.<session> resolves through the headless Service
    pod["spec"].update(scheduling_fields(image.scheduling))
    return pod


def kernel_limits(resources: Resources, image: ResolvedImage) -> dict[str, str]:
    """A kernel container's limits: the session's CPU, memory and GPUs, the image's scratch."""
    limits = {"cpu": resources.cpu, "memory": resources.memory, "ephemeral-storage": image.security.scratch}
    if resources.gpu:
        limits["nvidia.com/gpu"] = str(resources.gpu)
    return limits


RESIZE_POLICY = [
    {"resourceName": "cpu", "restartPolicy": "NotRequired"},
    {"resourceName": "memory", "restartPolicy": "NotRequired"},
]
"""A warm kernel's limits change in place (InPlacePodVerticalScaling) without a restart."""


def container_resources(limits: dict[str, str], guarantee: Guarantee) -> JsonDict:
    """Requests under the image table's guarantee, limits as asked (ephemeral storage and
    GPUs are requested whole: neither can be over-committed)."""
    requests = dict(limits)
    requests["cpu"] = guaranteed(limits["cpu"], guarantee.cpu, "m")
    requests["memory"] = guaranteed(limits["memory"], guarantee.memory, "")
    return {"requests": requests, "limits": limits}


def pod_security_context(security: Security) -> JsonDict:
    """The Pod's user, group and seccomp profile: the ``restricted`` Pod Security Standard.
    fsGroup gives the kernel's group the volumes (the runner reads its identity through it)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": security.run_as_user,
        "runAsGroup": security.run_as_group,
        "fsGroup": security.run_as_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(security: Security) -> JsonDict:
    """No privilege escalation and no capabilities (NET_BIND_SERVICE only if the image table
    says so), a read-only root filesystem unless it says otherwise."""
    capabilities: JsonDict = {"drop": ["ALL"]}
    if security.net_bind_service:
        capabilities["add"] = ["NET_BIND_SERVICE"]
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": security.read_only_root_filesystem,
        "capabilities": capabilities,
    }


def scratch_fields(security: Security) -> tuple[list[JsonDict], list[JsonDict]]:
    """An emptyDir of ``scratch`` size for the working directory and each writable path:
    the only places a kernel writes when its root filesystem is read-only."""
    paths = [HOME, *(p for p in security.writable_paths if p != HOME)]
    volumes = [
        {"name": f"scratch-{i}", "emptyDir": {"sizeLimit": security.scratch}} for i in range(len(paths))
    ]
    mounts = [{"name": f"scratch-{i}", "mountPath": path} for i, path in enumerate(paths)]
    return volumes, mounts


def scheduling_fields(scheduling: Scheduling) -> JsonDict:
    """The image table's scheduling as Pod spec fields (only those that are set)."""
    fields: JsonDict = {}
    if scheduling.node_selector:
        fields["nodeSelector"] = dict(scheduling.node_selector)
    if scheduling.tolerations:
        fields["tolerations"] = [
            t.model_dump(by_alias=True, exclude_none=True) for t in scheduling.tolerations
        ]
    if scheduling.image_pull_secrets:
        fields["imagePullSecrets"] = [{"name": n} for n in scheduling.image_pull_secrets]
    if scheduling.runtime_class_name:
        fields["runtimeClassName"] = scheduling.runtime_class_name
    if scheduling.priority_class_name:
        fields["priorityClassName"] = scheduling.priority_class_name
    return fields


def runner_container_fields() -> JsonDict:
    """The runner's port, and readiness on its health check: ``kernel_started`` (every Pod
    Ready) then means the kernel can run code. The check waits for readiness (see
    ``READINESS_WAIT_SECONDS``), so the first probe succeeds the moment the kernel can."""
    return {
        "ports": [{"name": rn.PORT_NAME, "containerPort": rn.PORT, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": f"{rn.HEALTH_PATH}?wait={rn.READINESS_WAIT_SECONDS}", "port": rn.PORT_NAME},
            "periodSeconds": 1,
            "timeoutSeconds": rn.READINESS_WAIT_SECONDS + 2,
            "failureThreshold": 3,
        },
    }


def build_runner_secret(name: str, spec: KernelSessionSpec, token: str) -> JsonDict:
    """The runner's identity: its bearer token (the API reads it; the session's user never
    does) and who the session is for. Owned by the KernelSession (kopf.adopt)."""
    identity = {
        "sessionId": spec.session_id,
        "ownerAccessKey": spec.owner.access_key,
        "environ": dict(sorted(spec.environ.items())),
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": rn.secret_name(name),
            "labels": {**session_labels(name, spec), r.LABEL_COMPONENT: "runner-identity"},
        },
        "type": "Opaque",
        "stringData": {rn.TOKEN_KEY: token, rn.IDENTITY_KEY: json.dumps(identity, sort_keys=True)},
    }


def build_pods(name: str, spec: KernelSessionSpec, image: ResolvedImage) -> list[JsonDict]:
    return [build_pod(name, spec, image, i) for i in range(spec.cluster_size)]


def build_service(name: str, spec: KernelSessionSpec) -> JsonDict | None:
    """The headless Service that gives a multi-kernel session stable host names."""
    if spec.cluster_size < 2:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "labels": {**session_labels(name, spec), r.LABEL_COMPONENT: "cluster-dns"},
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {r.LABEL_SESSION: name},
        },
    }


def build_network_policy(name: str, spec: KernelSessionSpec) -> JsonDict:
    """Lets a multi-kernel session's kernels reach each other (and nothing more) where a
    policy isolates the namespace's kernels (``LABEL_KERNELS_ISOLATED``, the chart's): it
    denies kernels every other kernel, and a NetworkPolicy cannot say "the same session"
    for all sessions at once, so each cluster session gets its own."""
    own_kernels = {"podSelector": {"matchLabels": {r.LABEL_SESSION: name, r.LABEL_COMPONENT: "kernel"}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"{name}-kernels",
            "labels": {**session_labels(name, spec), r.LABEL_COMPONENT: "network-policy"},
        },
        "spec": {
            **own_kernels,
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [own_kernels]}],
            "egress": [{"to": [own_kernels]}],
        },
    }
