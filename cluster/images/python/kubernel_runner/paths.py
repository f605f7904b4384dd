"""Paths a client names, kept inside the working directory.

Two layers. ``confine`` resolves the name with symlinks followed (``os.path.realpath``)
and refuses what lands outside: ``..``, absolute paths elsewhere, links that lead out.
Then every file call reaches the resolved path by ``walk``: one component at a time from
a descriptor of the working directory, with ``O_NOFOLLOW``, so a directory the user's code
swaps for a symlink between the check and the use is refused, never followed (the runner
is root; the user's code is not).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# What a walk meets when a component is (or became) a symlink or not a directory.
RACE_ERRNOS = (errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.EMLINK)


class OutsideWorkdir(ValueError):
    """The path leads out of the working directory (or is not a usable path in it)."""


def confine(workdir: Path, name: str) -> Path:
    """``name`` (relative to ``workdir``, or absolute inside it) resolved; raises OutsideWorkdir."""
    if not name or "\x00" in name:
        raise OutsideWorkdir("an empty path or one with a NUL character")
    root = Path(os.path.realpath(workdir))
    candidate = Path(name) if os.path.isabs(name) else root / name
    resolved = Path(os.path.realpath(candidate))
    if resolved != root and root not in resolved.parents:
        raise OutsideWorkdir(f"{name!r} is outside the working directory {workdir}")
    return resolved


def parts_inside(workdir: Path, resolved: Path) -> tuple[str, ...]:
    """The components of a confined path below the working directory (pure)."""
    return Path(resolved).relative_to(os.path.realpath(workdir)).parts


@contextlib.contextmanager
def opened_root(workdir: Path) -> Iterator[int]:
    fd = os.open(workdir, DIR_FLAGS)
    try:
        yield fd
    finally:
        os.close(fd)


def walk(
    root_fd: int, parts: tuple[str, ...], *, create: bool = False, owner: tuple[int, int] | None = None
) -> int:
    """A new descriptor of the directory ``parts`` below ``root_fd``, never through a symlink.

    ``create``: missing directories are made (mode 0755, given to ``owner``). The caller
    closes the descriptor. Raises OutsideWorkdir when a component is a symlink or not a
    directory, FileNotFoundError when one is missing.
    """
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                next_fd = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                if owner is not None:
                    os.chown(part, *owner, dir_fd=fd, follow_symlinks=False)
                next_fd = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in RACE_ERRNOS:
                    raise OutsideWorkdir(f"{part!r} is not a directory of the working directory") from None
                raise
            os.close(fd)
            fd = next_fd
        return fd
    except BaseException:
        os.close(fd)
        raise
