"""The image table: aliases (``python:3.6``) to full references, and the
registries sessions may pull from. Pure; loaded from YAML by the services.

File format (``KUBERNEL_IMAGES``, or ``images:`` in the Helm values)::

    allowedRegistries: [docker.io, registry.example]
    aliases:
      python:3.6: {image: docker.io/lablup/python:3.6-ubuntu18.04, command: [sleep, infinity]}
    defaultCommand: [sleep, infinity]
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class ImageNotAllowed(ValueError):
    """The image is neither an alias nor from an allowed registry."""


class ImageAlias(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)
    image: str
    command: list[str] | None = None


class ResolvedImage(BaseModel):
    model_config = ConfigDict(frozen=True)
    image: str
    command: list[str]


class ImageTable(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)
    allowed_registries: list[str] = Field(default_factory=lambda: ["docker.io"])
    aliases: dict[str, ImageAlias] = Field(default_factory=dict)
    default_command: list[str] = Field(default_factory=lambda: ["sleep", "infinity"])

    @classmethod
    def load(cls, path: Path | str | None) -> ImageTable:
        if not path:
            return DEFAULT_TABLE
        return cls.model_validate(yaml.safe_load(Path(path).read_text()) or {})

    def resolve(self, requested: str) -> ResolvedImage:
        alias = self.aliases.get(requested)
        if alias is not None:
            return ResolvedImage(image=alias.image, command=alias.command or self.default_command)
        if registry_of(requested) in self.allowed_registries:
            return ResolvedImage(image=requested, command=self.default_command)
        raise ImageNotAllowed(
            f"image {requested!r} is not a known alias and its registry {registry_of(requested)!r} "
            f"is not allowed (allowed: {', '.join(self.allowed_registries) or 'none'})")


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
