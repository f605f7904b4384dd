"""The image table: aliases (``python:3.6``) to full references, and the
registries sessions may pull from. Pure; loaded from YAML by the services.

File format (``KUBERNEL_IMAGES``, or ``images:`` in the Helm values)::

    allowedRegistries: [docker.io, registry.example]
    scheduling:                 # where sessions run unless their alias says otherwise
      nodeSelector: {kubernetes.io/os: linux}
    aliases:
      python:3.6:
        image: docker.io/lablup/python:3.6-ubuntu18.04
        command: [sleep, infinity]
        runner: false           # true: the image runs Kubernel's code runner (docs/runner.md)
        servicePorts:           # app services, listed in the API's servicePorts
          - {name: jupyter, protocol: http, ports: [8080]}
        security:               # replaces the table's security for this alias
          readOnlyRootFilesystem: false
        scheduling:             # replaces the table's scheduling for this alias
          nodeSelector: {pool: cpu}
          tolerations: [{key: pool, operator: Equal, value: cpu, effect: NoSchedule}]
          imagePullSecrets: [regcred]
          runtimeClassName: gvisor
          priorityClassName: sessions
    defaultCommand: [sleep, infinity]
    security:                   # how kernels are confined (below: the defaults)
      runAsUser: 1000
      runAsGroup: 1000
      readOnlyRootFilesystem: true
      writablePaths: [/tmp]     # besides the working directory, each an emptyDir
      scratch: 1Gi              # each writable directory's size, and the container's ephemeral-storage
      netBindService: false
    guarantee:                  # what kernels request of their limits (below: the defaults)
      cpu: 100%                 # a percentage of the limit, or an amount (250m)
      memory: 100%              # keep 100% unless OOM kills are acceptable

The scheduling fields are the Pod's own (``spec.nodeSelector`` ...): the image
table is written by the platform team, never by a session's user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kubernel.model import Quantity
from kubernel.runner import KERNEL_UID


class ImageNotAllowed(ValueError):
    """The image is neither an alias nor from an allowed registry."""


# RE2/Kubernetes DNS subdomain (RuntimeClass, PriorityClass and Secret names).
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
Subdomain = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]


class _Config(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Toleration(_Config):
    """A Pod toleration (core/v1 Toleration)."""

    key: str | None = Field(None, max_length=317)
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = Field(None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class Scheduling(_Config):
    """Where a session's Pods may run: copied into each kernel Pod's spec."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    image_pull_secrets: list[Subdomain] = Field(default_factory=list)
    runtime_class_name: Subdomain | None = None
    priority_class_name: Subdomain | None = None


def _plain_absolute(path: str) -> str:
    """An absolute path with no ``.``/``..`` step, outside the kernel's own /proc, /sys, /dev."""
    steps = path.split("/")[1:]
    if any(step in ("", ".", "..") for step in steps) or steps[0] in ("proc", "sys", "dev"):
        raise ValueError(f"{path!r} is not a plain absolute path outside /proc, /sys and /dev")
    return path


AbsolutePath = Annotated[
    str,
    Field(min_length=2, max_length=256, pattern=r"^/[A-Za-z0-9._/-]+$"),
    AfterValidator(_plain_absolute),
]


class Security(_Config):
    """How a kernel's container is confined. The defaults meet the Pod Security Standards'
    ``restricted`` profile (non-root, no privilege escalation, every capability dropped,
    seccomp ``RuntimeDefault``) and add a read-only root filesystem; no field here can make a
    kernel root or privileged, so every value still passes ``restricted``. docs/security.md
    says what each relaxation costs."""

    run_as_user: int = Field(KERNEL_UID, ge=1, le=2**31 - 1)
    """The kernel's UID (never 0); the image needs no user of this number."""
    run_as_group: int = Field(KERNEL_UID, ge=1, le=2**31 - 1)
    """Its GID, also the Pod's fsGroup: the runner's identity files and the scratch
    directories belong to this group."""
    read_only_root_filesystem: bool = True
    """false: user code may change the image's files in its own container (they count
    against ``scratch``)."""
    writable_paths: list[AbsolutePath] = Field(default_factory=lambda: ["/tmp"], max_length=16)
    """Directories given an empty, writable volume each, besides the working directory."""
    scratch: Quantity = "1Gi"
    """The size of each writable directory (emptyDir ``sizeLimit``) and the container's
    ``ephemeral-storage`` request and limit: the kubelet evicts a kernel that writes more."""
    net_bind_service: bool = False
    """Adds NET_BIND_SERVICE (ports below 1024), the one capability ``restricted`` allows."""


GuaranteeValue = Annotated[
    str,
    Field(pattern=r"^(([1-9][0-9]?|100)%|([0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti)?))$", max_length=32),
]


class Guarantee(_Config):
    """What each kernel container requests (the scheduler reserves it) of the limit its session
    may use: ``requests`` below ``limits``, as notebook platforms do (KubeSpawner's
    ``cpu_guarantee``), since interactive kernels are idle most of the time. A percentage of
    the limit or an amount (capped at the limit). Below 100% the Pod's QoS class is
    Burstable. docs/capacity.md says what each choice costs."""

    cpu: GuaranteeValue = "100%"
    """CPU requested: ``10%`` of a 1-CPU limit reserves 100m; the kernel may still burst to
    its limit when the node has CPU to spare."""
    memory: GuaranteeValue = "100%"
    """Memory requested. Keep ``100%`` unless OOM kills are acceptable: memory over-commit
    means the kernel's node can run out, and then the kernel is killed."""


class ServicePort(_Config):
    """An app service the image offers (Backend.AI's ``ai.backend.service-ports`` label)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
    protocol: Literal["tcp", "http", "pty", "preopen"] = "tcp"
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(min_length=1, max_length=8)


class ImageAlias(_Config):
    image: str = Field(min_length=1, max_length=512)
    service_ports: list[ServicePort] = Field(default_factory=list, max_length=32)
    """The app services its kernels offer, listed in the API's ``servicePorts``."""
    command: list[str] | None = None
    """The kernel's command; unset: the table's ``defaultCommand``; ``[]``: the image's own entrypoint."""
    runner: bool = False
    """The image runs Kubernel's code runner as its entrypoint: sessions of it execute code
    (the operator gives the Pod the runner's Secret, port and readiness probe)."""
    scheduling: Scheduling | None = None
    """Replaces the table's ``scheduling`` for this alias when set."""
    security: Security | None = None
    """Replaces the table's ``security`` for this alias when set."""
    guarantee: Guarantee | None = None
    """Replaces the table's ``guarantee`` for this alias when set."""


class ResolvedImage(BaseModel):
    model_config = ConfigDict(frozen=True)
    image: str
    command: list[str]
    runner: bool = False
    scheduling: Scheduling = Field(default_factory=Scheduling)
    security: Security = Field(default_factory=Security)
    guarantee: Guarantee = Field(default_factory=Guarantee)


class ImageTable(_Config):
    allowed_registries: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["docker.io"]
    )
    aliases: dict[str, ImageAlias] = Field(default_factory=dict)
    default_command: list[str] = Field(default_factory=lambda: ["sleep", "infinity"], min_length=1)
    scheduling: Scheduling = Field(default_factory=Scheduling)
    """Where sessions run unless their alias has its own."""
    security: Security = Field(default_factory=Security)
    """How kernels are confined unless their alias has its own."""
    guarantee: Guarantee = Field(default_factory=Guarantee)
    """What kernels request of their limits unless their alias has its own."""

    @classmethod
    def load(cls, path: Path | str | None) -> ImageTable:
        if not path:
            return DEFAULT_TABLE
        return cls.model_validate(yaml.safe_load(Path(path).read_text()) or {})

    def resolve(self, requested: str) -> ResolvedImage:
        alias = self.aliases.get(requested)
        if alias is not None:
            return self.pinned(requested, alias.image)
        if registry_of(requested) in self.allowed_registries:
            return ResolvedImage(
                image=requested,
                command=self.default_command,
                scheduling=self.scheduling,
                security=self.security,
                guarantee=self.guarantee,
            )
        raise ImageNotAllowed(
            f"image {requested!r} is not a known alias and its registry {registry_of(requested)!r} "
            f"is not allowed (allowed: {', '.join(self.allowed_registries) or 'none'})"
        )

    def service_ports(self, requested: str) -> list[ServicePort]:
        alias = self.aliases.get(requested)
        return list(alias.service_ports) if alias is not None else []

    def to_run(self, requested: str, resolved: str | None) -> ResolvedImage:
        """The image a session runs: ``resolved`` (pinned when the session was created)
        if set, else what ``requested`` resolves to now. Raises ImageNotAllowed."""
        return self.pinned(requested, resolved) if resolved else self.resolve(requested)

    def pinned(self, requested: str, image: str) -> ResolvedImage:
        """What runs ``image``, pinned earlier for ``requested``: the alias's command,
        scheduling and security (read now, so a changed table moves new Pods), else the table's."""
        alias = self.aliases.get(requested)
        command = alias.command if alias is not None and alias.command is not None else self.default_command
        scheduling = alias.scheduling if alias and alias.scheduling is not None else self.scheduling
        security = alias.security if alias and alias.security is not None else self.security
        guarantee = alias.guarantee if alias and alias.guarantee is not None else self.guarantee
        return ResolvedImage(
            image=image,
            command=command,
            runner=alias.runner if alias else False,
            scheduling=scheduling,
            security=security,
            guarantee=guarantee,
        )


def registry_of(image: str) -> str:
    """The registry host of a reference; Docker Hub for short names (``python:3``)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


DEFAULT_TABLE = ImageTable(
    allowed_registries=["docker.io"],
    aliases={
        "python:3.6": ImageAlias(image="docker.io/lablup/python:3.6-ubuntu18.04"),
        "python:latest": ImageAlias(image="docker.io/lablup/python:3.6-ubuntu18.04"),
    },
)
