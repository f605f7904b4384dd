"""The KernelPool resource, defined once: warm kernels of one image and size, started
before any session asks, each claimed by one session (docs/pools.md).

The CRD in crds/ is generated from these models (``python -m kubernel.crd``).
"""

from __future__ import annotations

from pydantic import Field

from .model import Resources, _Model


class KernelPoolSpec(_Model):
    image: str = Field(
        min_length=1,
        max_length=512,
        description="The image alias of the image table the pool's kernels run (e.g. python:3.6); "
        "a create of this alias may claim one.",
    )
    replicas: int = Field(
        1, ge=0, le=1000, description="Warm (unclaimed) kernels to keep; the scale subresource sets it."
    )
    resources: Resources = Field(
        default_factory=Resources,
        description="Each warm kernel's limits; a create that asks for more is resized in place "
        "when the node allows, and one that asks for less memory starts cold.",
    )
    max_starting: int = Field(
        2,
        ge=1,
        le=100,
        description="At most this many of the pool's kernels start at once: the refill's bound, "
        "so that a refill never crowds out the sessions' own starts.",
    )


class KernelPoolStatus(_Model):
    replicas: int = Field(0, ge=0, description="Unclaimed kernels, ready or starting (scale subresource).")
    ready: int = Field(0, ge=0, description="Unclaimed kernels ready to execute.")
    starting: int = Field(0, ge=0, description="Unclaimed kernels still starting.")
    claimed: int = Field(0, ge=0, description="Kernels claimed by sessions since the operator started.")
    misses: int = Field(
        0, ge=0, description="Creates of the pool's image that started cold since the operator started."
    )
    last_miss_reason: str = Field("", description="Why the last cold start did not claim a kernel.")
    message: str = Field(
        "", max_length=1024, description="Why the pool keeps no kernels (an image the table refuses), if so."
    )
    selector: str = Field("", description="Label selector of the unclaimed kernels (scale subresource).")
    template_hash: str = Field(
        "", description="Hash of the current kernel template; older idle kernels roll."
    )
    observed_generation: int = Field(0, ge=0, description="The spec generation this status reflects.")


class KernelPool(_Model):
    """Warm kernels of one image and size, ready to execute, waiting for sessions."""

    api_version: str = Field("kubernel.io/v1alpha1", description="kubernel.io/v1alpha1")
    kind: str = Field("KernelPool", description="KernelPool")
    spec: KernelPoolSpec
    status: KernelPoolStatus | None = None
