"""Request bodies and query strings as validated models, and request -> spec (pure)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kubernel import folders
from kubernel import model as m
from kubernel.images import ImageNotAllowed, ImageTable
from kubernel.jsondict import JsonDict

from . import slots
from .problems import Problem, ProblemType

_ENV_NAME = re.compile(m.ENV_NAME_PATTERN)


CONFIG_ALIASES = {
    "cluster_size": "clusterSize",
    "scaling_group": "scalingGroup",
    "resourceOpts": "resource_opts",
}
CREATE_ALIASES = {
    "sessionType": "type",
    "groupName": "group",
    "group_name": "group",
    "domainName": "domain",
    "domain_name": "domain",
}


def _documented(aliases: dict[str, str], extra: JsonDict | None = None) -> Callable[[JsonDict], None]:
    """The JSON schema with each alias as a property of its own (the OpenAPI document)."""

    def add(schema: JsonDict) -> None:
        properties = schema.setdefault("properties", {})
        for alias, canonical in aliases.items():
            properties[alias] = {
                **properties[canonical],
                "description": f"Backend.AI 19.09's spelling of `{canonical}`.",
            }
        schema.update(extra or {})

    return add


class CreationConfig(BaseModel):
    """The ``config`` object of POST /kernel."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, json_schema_extra=_documented(CONFIG_ALIASES)
    )
    cluster_size: int | None = Field(None, alias="clusterSize", ge=1, description="Number of kernels (>= 1).")
    instance_memory: int | None = Field(
        None,
        alias="instanceMemory",
        ge=1,
        description="Legacy memory per kernel, in KiB (used when resources.mem is absent).",
    )
    environ: dict[str, str] | None = Field(None, description="Environment variables.")
    mounts: list[str] | None = Field(
        None, max_length=32, description="Virtual folders: `name` or `name:path`."
    )
    resources: dict[str, int | float | str | None] | None = Field(
        None,
        max_length=16,
        description='Per kernel: {"cpu": 2, "mem": "4g", "cuda.device": 1}; '
        'numbers or strings ("1", "1.00").',
    )
    resource_opts: dict[str, int | float | str | None] | None = Field(
        None, max_length=16, description="Accepted and ignored (also `resourceOpts`)."
    )
    scaling_group: str | None = Field(
        None, alias="scalingGroup", max_length=64, description="Accepted and ignored (also `scaling_group`)."
    )

    @model_validator(mode="before")
    @classmethod
    def _other_spellings(cls, data: object) -> object:
        return _aliased(data, CONFIG_ALIASES)  # the 19.09 manager's, under this API version


class CreateRequest(BaseModel):
    """POST /kernel and POST /kernel/create."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra=_documented(
            CREATE_ALIASES,
            {
                # _rules below, stated in the schema too (the OpenAPI document, and the fuzzer reading it).
                "anyOf": [
                    {"required": ["image"], "properties": {"image": {"type": "string"}}},
                    {"required": ["lang"], "properties": {"lang": {"type": "string"}}},
                ],
                "if": {"required": ["type"], "properties": {"type": {"const": "batch"}}},
                "then": {
                    "required": ["startupCommand"],
                    "properties": {"startupCommand": {"type": "string", "pattern": r"\S"}},
                },
            },
        ),
    )
    client_session_token: m.Token = Field(
        alias="clientSessionToken", description=r"The session id: ^(?=.{4,64}$)\w[\w.-]*\w$ (ASCII)."
    )
    image: str | None = Field(
        None, min_length=1, max_length=512, description="Image or alias, e.g. python:3.6."
    )
    lang: str | None = Field(None, min_length=1, max_length=512, description="Legacy name of `image`.")
    type: Literal["interactive", "batch"] = Field("interactive", description="Session type.")
    startup_command: str | None = Field(
        None,
        alias="startupCommand",
        max_length=65536,
        description="Command of a batch session (required for batch).",
    )
    domain: str | None = Field(None, max_length=64, description="Domain (default: the owner's).")
    group: str | None = Field(None, max_length=64, description="Group (default: the owner's first).")
    tag: str | None = Field(None, max_length=256, description="Free-form tag.")
    enqueue_only: bool = Field(
        False, alias="enqueueOnly", description="Answer without waiting for the start."
    )
    max_wait_seconds: int = Field(
        0, alias="maxWaitSeconds", ge=0, description="Longest wait for the start; 0 = the server's cap."
    )
    reuse_if_exists: bool = Field(
        True, alias="reuseIfExists", description="false: an existing session with the token is an error."
    )
    owner_access_key: str | None = Field(
        None, max_length=128, description="Create for another keypair (admins)."
    )
    config: CreationConfig = Field(default_factory=CreationConfig, description="Creation options.")

    @model_validator(mode="before")
    @classmethod
    def _other_spellings(cls, data: object) -> object:
        return _aliased(data, CREATE_ALIASES)  # the 19.09 manager's, under this API version

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


class OwnerQuery(BaseModel):
    """Query of GET/PATCH /kernel/:id."""

    model_config = ConfigDict(extra="forbid")
    owner_access_key: str | None = Field(None, max_length=128)


class DestroyQuery(OwnerQuery):
    forced: bool = False

    @field_validator("forced", mode="before")
    @classmethod
    def _flag(cls, value: object) -> object:
        # As documented and as the Backend.AI client sends it; anything else is a 400
        # (the fuzz suite found `forced=` accepted as false).
        if isinstance(value, str):
            if value not in ("true", "false"):
                raise ValueError("must be true or false")
            return value == "true"
        return value


class StreamQuery(BaseModel):
    """Query of GET /stream/kernel/_/events."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    session_id: str = Field("*", alias="sessionId", max_length=64)
    owner_access_key: str | None = Field(None, alias="ownerAccessKey", max_length=128)
    group: str = Field("*", max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _other_spellings(cls, data: object) -> object:
        # The 19.09 client sends owner_access_key (its manager refused it); the seed says
        # ownerAccessKey. The manager also reads groupName.
        return _aliased(data, {"owner_access_key": "ownerAccessKey", "groupName": "group"})


def _aliased(data: object, aliases: dict[str, str]) -> object:
    """``data`` with each alias renamed to its canonical key; both given is a 400."""
    if not isinstance(data, dict) or not any(a in data for a in aliases):
        return data
    data = dict(data)
    for alias, canonical in aliases.items():
        if alias in data:
            if canonical in data:
                raise ValueError(f"{alias} and {canonical} are the same parameter; give one")
            data[canonical] = data.pop(alias)
    return data


def describe(error: ValidationError) -> str:
    """pydantic's errors as one line for ``detail`` (no input echoed back)."""
    parts = []
    for e in error.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in e["loc"] if p not in ("function-after",))
        parts.append(f"{where}: {e['msg']}" if where else e["msg"])
    return "; ".join(parts)


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse(model: type[ModelT], data: object) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Problem(ProblemType.INVALID_PARAMETERS, describe(exc)) from None


def mount_requests(config: CreationConfig) -> list[folders.MountRequest]:
    """``config.mounts`` as requests: ``name[:path][:ro|:rw]``, paths kept in the working directory."""
    try:
        return [folders.parse_mount(item) for item in config.mounts or []]
    except folders.BadMount as exc:
        raise Problem(ProblemType.INVALID_PARAMETERS, f"config.mounts: {exc}") from None


def grant_mounts(
    wanted: list[folders.MountRequest], claims: dict[str, dict[str, str] | None], owner: m.Owner
) -> list[JsonDict]:
    """The mounts ``owner`` may have, read-only where the folder or the request says so.
    A claim that is missing and one that is not the owner's get the same 404: no oracle."""
    mounts = []
    for request in wanted:
        granted = folders.access_of(
            claims.get(request.name), access_key=owner.access_key, domain=owner.domain, group=owner.group
        )
        if granted is None:
            raise Problem(ProblemType.VFOLDER_NOT_FOUND, f"no virtual folder {request.name!r} for this owner")
        flag = folders.read_only(request.mode, granted)
        if flag is None:
            raise Problem(
                ProblemType.FORBIDDEN, f"virtual folder {request.name!r} is read-only for this owner"
            )
        mounts.append({"name": request.name, "path": request.path, "readOnly": flag})
    return mounts


def to_spec(
    request: CreateRequest,
    *,
    access_key: str,
    domain: str,
    group: str,
    images: ImageTable,
    idle_timeout_seconds: int | None,
    mounts: list[JsonDict] | None = None,
) -> m.KernelSessionSpec:
    """The KernelSession spec for a validated request. Raises Problem on what the spec rejects."""
    try:
        resolved = images.resolve(request.requested_image)
    except ImageNotAllowed as exc:
        raise Problem(ProblemType.IMAGE_NOT_FOUND, str(exc)) from None
    try:
        return m.KernelSessionSpec(
            session_id=request.client_session_token,
            owner=m.Owner(access_key=access_key, domain=domain, group=group),
            image=request.requested_image,
            resolved_image=resolved.image,
            type=request.type,
            startup_command=request.startup_command,
            cluster_size=request.config.cluster_size or 1,
            resources=slots.resources(request.config.resources, request.config.instance_memory),
            environ=_environ(request.config),
            mounts=mounts or [],
            tag=request.tag,
            idle_timeout_seconds=idle_timeout_seconds,
        )
    except ValidationError as exc:
        raise Problem(ProblemType.INVALID_PARAMETERS, describe(exc)) from None


# Bounds on config.environ: it is copied into every kernel Pod of the session (and
# into its runner's Secret), so its size multiplies by clusterSize in etcd.
ENVIRON_MAX_VARIABLES = 64
ENVIRON_MAX_NAME = 128
ENVIRON_MAX_VALUE = 4096
ENVIRON_MAX_TOTAL = 32768


def _environ(config: CreationConfig) -> dict[str, str]:
    environ = config.environ or {}
    bad = [k for k in environ if not _ENV_NAME.match(k) or len(k) > ENVIRON_MAX_NAME]
    if bad:
        raise Problem(
            ProblemType.INVALID_PARAMETERS,
            f"config.environ: invalid variable name(s) {', '.join(sorted(k[:40] for k in bad)[:5])}",
        )
    long = sorted(k for k, v in environ.items() if len(v) > ENVIRON_MAX_VALUE)
    total = sum(len(k) + len(v) for k, v in environ.items())
    if len(environ) > ENVIRON_MAX_VARIABLES or long or total > ENVIRON_MAX_TOTAL:
        raise Problem(
            ProblemType.INVALID_PARAMETERS,
            f"config.environ: at most {ENVIRON_MAX_VARIABLES} variables, {ENVIRON_MAX_VALUE} characters "
            f"per value and {ENVIRON_MAX_TOTAL} in all"
            + (f" ({', '.join(long[:5])} too long)" if long else ""),
        )
    return environ
