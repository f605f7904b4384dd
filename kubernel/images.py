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
        scheduling:             # replaces the table's scheduling for this alias
          nodeSelector: {pool: cpu}
          tolerations: [{key: pool, operator: Equal, value: cpu, effect: NoSchedule}]
          imagePullSecrets: [regcred]
          runtimeClassName: gvisor
          priorityClassName: sessions
    defaultCommand: [sleep, infinity]

The scheduling fields are the Pod's own (``spec.nodeSelector`` ...): the image
table is written by the platform team, never by a session's user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


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


class ResolvedImage(BaseModel):
    model_config = ConfigDict(frozen=True)
    image: str
    command: list[str]
    runner: bool = False
    scheduling: Scheduling = Field(default_factory=Scheduling)


class ImageTable(_Config):
    allowed_registries: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["docker.io"]
    )
    aliases: dict[str, ImageAlias] = Field(default_factory=dict)
    default_command: list[str] = Field(default_factory=lambda: ["sleep", "infinity"], min_length=1)
    scheduling: Scheduling = Field(default_factory=Scheduling)
    """Where sessions run unless their alias has its own."""

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
            return ResolvedImage(image=requested, command=self.default_command, scheduling=self.scheduling)
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
        """What runs ``image``, pinned earlier for ``requested``: the alias's command and
        scheduling (read now, so a changed table moves new Pods), else the table's."""
        alias = self.aliases.get(requested)
        command = alias.command if alias is not None and alias.command is not None else self.default_command
        scheduling = alias.scheduling if alias and alias.scheduling is not None else self.scheduling
        return ResolvedImage(
            image=image, command=command, runner=alias.runner if alias else False, scheduling=scheduling
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
