"""The KernelSession resource, defined once.

The CRD in crds/ is generated from these models (``python -m kubernel.crd``)
and a test keeps the two equal. Field descriptions become ``kubectl explain``
text. Patterns are RE2-compatible because the API server evaluates them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .lifecycle import LifecycleEvent, Phase, Result

# Backend.AI accepts ^(?=.{4,64}$)\w[\w.-]*\w$ (ASCII); the length moves to min/max.
TOKEN_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*[A-Za-z0-9_]$"
# Kubernetes resource.Quantity, as the API server's own OpenAPI spells it.
QUANTITY_PATTERN = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
MOUNT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
MOUNT_PATH_PATTERN = r"^[^:\x00]+$"
LIFECYCLE_LOG_LIMIT = 64

Token = Annotated[str, Field(min_length=4, max_length=64, pattern=TOKEN_PATTERN)]
Quantity = Annotated[str, Field(pattern=QUANTITY_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", use_enum_values=True
    )


class Owner(_Model):
    access_key: str = Field(
        min_length=1, max_length=128, description="Access key of the keypair that owns the session."
    )
    domain: str = Field("default", min_length=1, max_length=64, description="Domain of the owner.")
    group: str = Field(
        "default", min_length=1, max_length=64, description="Group (project) the session runs for."
    )


class Resources(_Model):
    cpu: Quantity = Field(
        "1",
        description="CPU cores each kernel container may use (its limit; it requests the image "
        "table's guarantee of it).",
    )
    memory: Quantity = Field(
        "1Gi",
        description="Memory each kernel container may use (its limit; it requests the image "
        "table's guarantee of it).",
    )
    gpu: int = Field(0, ge=0, le=64, description="nvidia.com/gpu devices for each kernel container.")


class Mount(_Model):
    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=MOUNT_NAME_PATTERN,
        description="Virtual folder: the PersistentVolumeClaim of this name in the session's namespace, "
        "which its labels must give to the session's owner (docs/folders.md).",
    )
    path: str | None = Field(
        None,
        max_length=1024,
        pattern=MOUNT_PATH_PATTERN,
        description="Mount path inside /home/work (relative to it). Default: /home/work/<name>.",
    )
    read_only: bool = Field(
        False, description="Mount read-only (name:ro, or a folder that is read-only for the owner)."
    )


class KernelSessionSpec(_Model):
    session_id: Token = Field(description="The client session token; also the kernel id of the REST API.")
    owner: Owner = Field(description="Who owns the session.")
    image: str = Field(
        min_length=1, max_length=512, description="The image (or `lang`) as requested, e.g. python:3.6."
    )
    resolved_image: str | None = Field(
        None, max_length=512, description="The full image reference the alias table resolved `image` to."
    )
    type: Literal["interactive", "batch"] = Field("interactive", description="Session type.")
    startup_command: str | None = Field(
        None, max_length=65536, description="Command run by a batch session (shell syntax)."
    )
    cluster_size: int = Field(
        1, ge=1, le=64, description="Number of kernels: one main and clusterSize-1 sub-kernels."
    )
    resources: Resources = Field(default_factory=Resources, description="Resources of each kernel.")
    environ: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables of the kernels.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"self.all(k, k.matches('{ENV_NAME_PATTERN}'))",
                    "message": "environment variable names must match " + ENV_NAME_PATTERN,
                }
            ]
        },
    )
    mounts: list[Mount] = Field(default_factory=list, max_length=32, description="Virtual folders to mount.")
    tag: str | None = Field(None, max_length=256, description="A free-form tag given at creation.")
    idle_timeout_seconds: int | None = Field(
        None,
        ge=0,
        description="End an interactive session after this long without access (0: never). "
        "Unset: the operator's default.",
    )
    batch_timeout_seconds: int | None = Field(
        None,
        ge=0,
        description="End a batch session that runs longer than this (0: never), with reason "
        "exec-timeout. Unset: the operator's default.",
    )
    restart_count: int = Field(0, ge=0, description="Bumped to request a restart (PATCH /kernel/:id).")
    termination_requested: Literal["user-requested", "force-terminated"] | None = Field(
        None,
        description="Set to end the session and keep the resource for the retention period "
        "(DELETE /kernel/:id); the value becomes the kernel_terminated reason.",
    )


class Condition(_Model):
    type: str = Field(description="Scheduled, Ready or Terminated.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field("", description="CamelCase reason of the last transition.")
    message: str = Field("", description="Human-readable detail.")
    last_transition_time: datetime | None = Field(None, description="When status last changed.")


class LifecycleEntry(_Model):
    seq: int = Field(ge=1, description="Position in the session's lifecycle; the SSE message id.")
    event: LifecycleEvent = Field(description="The lifecycle event name.")
    reason: str = Field("", description="Why it happened (see docs/lifecycle.md).")
    result: Result | None = Field(
        None, description="Only on kernel_terminated: UNDEFINED, SUCCESS or FAILURE."
    )
    restart: int = Field(0, ge=0, description="The restart generation the event belongs to.")
    time: datetime = Field(description="When the operator recorded it.")


class KernelSessionStatus(_Model):
    phase: Phase = Field(Phase.PENDING, description="Where the session is in its lifecycle.")
    reason: str = Field("", description="Reason of the last lifecycle event.")
    result: Result = Field(
        Result.UNDEFINED, description="Outcome of a terminated session (batch: exit code)."
    )
    message: str = Field("", description="Human-readable detail on the phase.")
    conditions: list[Condition] = Field(default_factory=list, description="Scheduled, Ready and Terminated.")
    created_at: datetime | None = Field(None, description="When the operator first saw the session.")
    scheduled_at: datetime | None = Field(None, description="When the main kernel was first scheduled.")
    started_at: datetime | None = Field(None, description="When the main kernel first became ready.")
    terminated_at: datetime | None = Field(None, description="When the session ended.")
    lifecycle: list[LifecycleEntry] = Field(
        default_factory=list,
        max_length=LIFECYCLE_LOG_LIMIT,
        description="The newest lifecycle events, in order.",
    )
    last_seq: int = Field(0, ge=0, description="Number of the last lifecycle event ever recorded.")
    observed_restart: int = Field(0, ge=0, description="The restart generation the Pods belong to.")
    memory_limit_kib: int = Field(0, ge=0, description="Memory limit of the main kernel in KiB.")
    cpu_credit_ms: int = Field(0, ge=0, description="Milliseconds the kernels ran, up to runningSince.")
    running_since: datetime | None = Field(None, description="Start of the current running period.")
    exit_code: int | None = Field(None, description="Exit code of the main kernel once it ended.")
    pods: list[str] = Field(default_factory=list, description="Names of the session's Pods.")
    kernel_address: str | None = Field(
        None,
        max_length=64,
        description="host:port of the main kernel's code runner while the session "
        "runs; unset when its image has none (docs/runner.md).",
    )
    waiting: str = Field(
        "",
        max_length=1024,
        description="Why the session waits, while no node can hold its kernels: the scheduler's "
        "words (its PodScheduled condition); empty once they are placed.",
    )
    pool: str = Field(
        "",
        max_length=253,
        description="The KernelPool the main kernel was claimed from; empty: a cold start.",
    )
    cold_start_reason: str = Field(
        "",
        max_length=256,
        description="Why a session of an image with a KernelPool started cold (docs/pools.md).",
    )
    access_count: int = Field(0, ge=0, description="Accesses through the API (numQueriesExecuted).")
    last_access_at: datetime | None = Field(
        None, description="Last access through the API; idle time counts from here."
    )


class KernelSession(_Model):
    """A compute session ("kernel") of the Backend.AI API run as Pods."""

    api_version: str = Field("kubernel.io/v1alpha1", description="kubernel.io/v1alpha1")
    kind: str = Field("KernelSession", description="KernelSession")
    spec: KernelSessionSpec
    status: KernelSessionStatus | None = None
