"""Request bodies and query strings as validated models, and request -> spec (pure)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kubernel import model as m
from kubernel.images import ImageNotAllowed, ImageTable
from kubernel.quantity import binary_size, parse_quantity

from .problems import Problem, ProblemType

GPU_SLOTS = ("cuda.device", "cuda.devices", "gpu")
_ENV_NAME = re.compile(m.ENV_NAME_PATTERN)


class CreationConfig(BaseModel):
    """The ``config`` object of POST /kernel."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    cluster_size: int | None = Field(None, alias="clusterSize", ge=1, description="Number of kernels (>= 1).")
    instance_memory: int | None = Field(None, alias="instanceMemory", ge=1,
                                        description="Legacy memory per kernel, in KiB (used when resources.mem is absent).")
    environ: dict[str, str] | None = Field(None, description="Environment variables.")
    mounts: list[str] | None = Field(None, max_length=32, description="Virtual folders: `name` or `name:path`.")
    resources: dict[str, int | float | str] | None = Field(
        None, description='Per kernel: {"cpu": 2, "mem": "4g", "cuda.device": 1}.')
    resource_opts: dict[str, int | float | str] | None = Field(None, description="Accepted and ignored.")
    scaling_group: str | None = Field(None, alias="scalingGroup", description="Accepted and ignored.")


class CreateRequest(BaseModel):
    """POST /kernel and POST /kernel/create."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra={
        # _rules below, stated in the schema too (the OpenAPI document, and the fuzzer reading it).
        "anyOf": [{"required": ["image"], "properties": {"image": {"type": "string"}}},
                  {"required": ["lang"], "properties": {"lang": {"type": "string"}}}],
        "if": {"required": ["type"], "properties": {"type": {"const": "batch"}}},
        "then": {"required": ["startupCommand"], "properties": {"startupCommand": {"type": "string", "pattern": r"\S"}}},
    })
    client_session_token: m.Token = Field(alias="clientSessionToken",
                                          description=r"The session id: ^(?=.{4,64}$)\w[\w.-]*\w$ (ASCII).")
    image: str | None = Field(None, min_length=1, max_length=512, description="Image or alias, e.g. python:3.6.")
    lang: str | None = Field(None, min_length=1, max_length=512, description="Legacy name of `image`.")
    type: Literal["interactive", "batch"] = Field("interactive", description="Session type.")
    startup_command: str | None = Field(None, alias="startupCommand", max_length=65536,
                                        description="Command of a batch session (required for batch).")
    domain: str | None = Field(None, max_length=64, description="Domain (default: the owner's).")
    group: str | None = Field(None, max_length=64, description="Group (default: the owner's first).")
    tag: str | None = Field(None, max_length=256, description="Free-form tag.")
    enqueue_only: bool = Field(False, alias="enqueueOnly", description="Answer without waiting for the start.")
    max_wait_seconds: int = Field(0, alias="maxWaitSeconds", ge=0,
                                  description="Longest wait for the start; 0 = the server's cap.")
    reuse_if_exists: bool = Field(True, alias="reuseIfExists",
                                  description="false: an existing session with the token is an error.")
    owner_access_key: str | None = Field(None, max_length=128, description="Create for another keypair (admins).")
    config: CreationConfig = Field(default_factory=CreationConfig, description="Creation options.")

    @field_validator("config", mode="before")
    @classmethod
    def _null_config(cls, value: object) -> object:
        return {} if value is None else value

    @model_validator(mode="after")
    def _rules(self) -> CreateRequest:
        if not (self.image or self.lang):
            raise ValueError("image (or its legacy name lang) is required")
        if self.type == "batch" and not (self.startup_command or "").strip():
            raise ValueError("startupCommand is required for batch sessions")
        return self

    @property
    def requested_image(self) -> str:
        return self.image or self.lang or ""


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


class OwnerQuery(BaseModel):
    """Query of GET/PATCH /kernel/:id."""

    model_config = ConfigDict(extra="forbid")
    owner_access_key: str | None = Field(None, max_length=128)


class DestroyQuery(OwnerQuery):
    forced: bool = False

    @field_validator("forced", mode="before")
    @classmethod
    def _flag(cls, value: object) -> bool:
        return _truthy(value) if isinstance(value, str) else bool(value)


class StreamQuery(BaseModel):
    """Query of GET /stream/kernel/_/events."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    session_id: str = Field("*", alias="sessionId", max_length=64)
    owner_access_key: str | None = Field(None, alias="ownerAccessKey", max_length=128)
    group: str = Field("*", max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _reference_client_spelling(cls, data: object) -> object:
        # The reference client sends owner_access_key; the spec says ownerAccessKey.
        if isinstance(data, dict) and "owner_access_key" in data:
            data = dict(data)
            legacy = data.pop("owner_access_key")
            data.setdefault("ownerAccessKey", legacy)
        return data


def describe(error: ValidationError) -> str:
    """pydantic's errors as one line for ``detail`` (no input echoed back)."""
    parts = []
    for e in error.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in e["loc"] if p not in ("function-after",))
        parts.append(f"{where}: {e['msg']}" if where else e["msg"])
    return "; ".join(parts)


def parse(model: type[BaseModel], data: object) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Problem(ProblemType.INVALID_PARAMETERS, describe(exc)) from None


def _resources(config: CreationConfig) -> m.Resources:
    slots = dict(config.resources or {})
    fields: dict[str, object] = {}

    def bad(slot: str, why: str) -> Problem:
        return Problem(ProblemType.INVALID_PARAMETERS, f"config.resources.{slot}: {why}")

    if "cpu" in slots:
        cpu = slots.pop("cpu")
        try:
            positive = parse_quantity(cpu) > 0
        except ValueError:
            positive = False
        if not positive:
            raise bad("cpu", f"{cpu!r} is not a positive number of cores")
        fields["cpu"] = str(cpu)
    for slot in ("mem", "memory"):
        if slot in slots:
            value = slots.pop(slot)
            try:
                size = binary_size(value)
            except ValueError:
                size = 0
            if size <= 0:
                raise bad(slot, f"{value!r} is not a size such as 4g, 512m or a number of bytes")
            fields["memory"] = str(size)
    if "memory" not in fields and config.instance_memory:
        fields["memory"] = f"{config.instance_memory}Ki"
    for slot in GPU_SLOTS:
        if slot in slots:
            gpu = slots.pop(slot)
            if isinstance(gpu, str) or float(gpu) != int(gpu) or int(gpu) < 0:
                raise bad(slot, f"{gpu!r} is not a whole number of devices")
            fields["gpu"] = int(gpu)
    if slots:
        raise Problem(ProblemType.INVALID_PARAMETERS,
                      f"config.resources: unsupported slot(s) {', '.join(sorted(slots))} "
                      f"(supported: cpu, mem, {', '.join(GPU_SLOTS)})")
    return m.Resources(**fields)


def _mounts(config: CreationConfig) -> list[m.Mount]:
    mounts = []
    for item in config.mounts or []:
        name, _, path = item.partition(":")
        mounts.append({"name": name, "path": path or None})
    return mounts  # type: ignore[return-value]  # validated by the spec below


def to_spec(request: CreateRequest, *, access_key: str, domain: str, group: str, images: ImageTable,
            idle_timeout_seconds: int | None) -> m.KernelSessionSpec:
    """The KernelSession spec for a validated request. Raises Problem on what the spec rejects."""
    try:
        resolved = images.resolve(request.requested_image)
    except ImageNotAllowed as exc:
        raise Problem(ProblemType.IMAGE_NOT_ALLOWED, str(exc)) from None
    try:
        return m.KernelSessionSpec(
            session_id=request.client_session_token,
            owner=m.Owner(access_key=access_key, domain=domain, group=group),
            image=request.requested_image, resolved_image=resolved.image, type=request.type,
            startup_command=request.startup_command, cluster_size=request.config.cluster_size or 1,
            resources=_resources(request.config), environ=_environ(request.config),
            mounts=_mounts(request.config), tag=request.tag, idle_timeout_seconds=idle_timeout_seconds,
        )
    except ValidationError as exc:
        raise Problem(ProblemType.INVALID_PARAMETERS, describe(exc)) from None


def _environ(config: CreationConfig) -> dict[str, str]:
    environ = config.environ or {}
    bad = [k for k in environ if not _ENV_NAME.match(k)]
    if bad:
        raise Problem(ProblemType.INVALID_PARAMETERS,
                      f"config.environ: invalid variable name(s) {', '.join(sorted(bad)[:5])}")
    return environ

