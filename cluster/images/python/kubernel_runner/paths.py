"""Paths a client names, kept inside the working directory.

Resolved with symlinks followed (``os.path.realpath``), so ``..``, absolute paths
elsewhere and links that lead out are all refused the same way.
"""

from __future__ import annotations

import os
from pathlib import Path


class OutsideWorkdir(ValueError):
    """The path leads out of the working directory."""


def confine(workdir: Path, name: str) -> Path:
    """``name`` (relative to ``workdir``, or absolute inside it) resolved; raises OutsideWorkdir."""
    if not name or "\x00" in name:
        raise OutsideWorkdir("an empty path or one with NUL")
    root = Path(os.path.realpath(workdir))
    candidate = Path(name) if os.path.isabs(name) else root / name
    resolved = Path(os.path.realpath(candidate))
    if resolved != root and root not in resolved.parents:
        raise OutsideWorkdir(f"{name!r} is outside {workdir}")
    return resolved
