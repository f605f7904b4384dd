"""Images for tests on the simulated kubelet."""

from __future__ import annotations

import uuid


def fresh_image() -> str:
    """An image no simulated node has pulled yet (an allowed registry in the tests' image table)."""
    return f"registry.example/kernels/python:{uuid.uuid4().hex[:8]}"
