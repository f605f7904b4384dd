"""What a session may ask for (pure): per-keypair and server-wide limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kubernel.model import Quantity, Resources
from kubernel.quantity import parse_quantity


class Limits(BaseModel):
    """Upper bounds; a field left unset does not limit."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)
    cpu: Quantity | None = Field(None, description="CPU per kernel.")
    memory: Quantity | None = Field(None, description="Memory per kernel.")
    gpu: int | None = Field(None, ge=0, description="nvidia.com/gpu per kernel.")
    cluster_size: int | None = Field(None, ge=1, description="Kernels per session.")
    concurrent_sessions: int | None = Field(None, ge=0, description="Live sessions per keypair.")
    total_cpu: Quantity | None = Field(None, description="CPU of all its live sessions together.")
    total_memory: Quantity | None = Field(None, description="Memory of all its live sessions together.")
    total_gpu: int | None = Field(None, ge=0, description="nvidia.com/gpu of all its live sessions together.")
    rate_limit: int | None = Field(
        None, ge=1, description="Requests per 15 minutes (Backend.AI's rate_limit); unset: the server's."
    )

    @classmethod
    def server_default(cls) -> Limits:
        return cls(cpu="64", memory="256Gi", gpu=8, cluster_size=16)


def exceeded(resources: Resources, cluster_size: int, *limits: Limits) -> list[str]:
    """Human-readable violations of any of ``limits``; empty when the request fits."""
    problems: list[str] = []
    for limit in limits:
        if limit.cpu is not None and parse_quantity(resources.cpu) > parse_quantity(limit.cpu):
            problems.append(f"cpu {resources.cpu} > {limit.cpu}")
        if limit.memory is not None and parse_quantity(resources.memory) > parse_quantity(limit.memory):
            problems.append(f"memory {resources.memory} > {limit.memory}")
        if limit.gpu is not None and resources.gpu > limit.gpu:
            problems.append(f"gpu {resources.gpu} > {limit.gpu}")
        if limit.cluster_size is not None and cluster_size > limit.cluster_size:
            problems.append(f"clusterSize {cluster_size} > {limit.cluster_size}")
    return list(dict.fromkeys(problems))
