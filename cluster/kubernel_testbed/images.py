"""Decide what the simulated kubelet does about a Pod's images (pure logic).

KWOK has no image store, so the test bed keeps one: a node "has" every image a
Pod on it pulled before, recorded in ``node.status.images`` like a real kubelet
reports it. The simulator writes the decision into the Pod annotation that the
KWOK stages select on.
"""

from __future__ import annotations

from collections.abc import Iterable

from kubernel.images import registry_of

IMAGE_ANNOTATION = "sim.kubernel.io/image"
UNPULLABLE_HOST_SUFFIX = ".invalid"


def is_unpullable(image: str) -> bool:
    return registry_of(image).split(":")[0].endswith(UNPULLABLE_HOST_SUFFIX)


def pull_decision(images: Iterable[str], node_images: set[str]) -> str:
    """``unpullable``, ``present`` (every image on the node) or ``absent``."""
    wanted = list(images)
    if any(is_unpullable(i) for i in wanted):
        return "unpullable"
    if all(i in node_images for i in wanted):
        return "present"
    return "absent"
