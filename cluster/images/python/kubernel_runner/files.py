"""The file calls: list, upload (multipart, streamed to disk), download (tar archives).
Every path goes through ``paths.confine``."""

from __future__ import annotations

import json
import os
import stat
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, MultipartReader

from .paths import OutsideWorkdir, confine


class TooLarge(Exception):
    pass


def listing(workdir: Path, name: str) -> dict[str, Any]:
    """19.09's ``files`` answer: the entries as a JSON string, errors, the absolute path."""
    directory = confine(workdir, name)
    if not directory.is_dir():
        raise FileNotFoundError(f"{name!r} is not a directory")
    entries = []
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        info = entry.lstat()
        entries.append({"filename": entry.name, "size": info.st_size, "mode": stat.filemode(info.st_mode),
                        "mtime": info.st_mtime})
    return {"files": json.dumps(entries), "errors": "", "abspath": str(directory)}


def _owned(path: Path, uid: int | None, gid: int | None) -> None:
    if uid is not None:
        os.chown(path, uid, gid if gid is not None else uid, follow_symlinks=False)


def _target(workdir: Path, name: str, uid: int | None, gid: int | None) -> Path:
    """Where an upload named ``name`` goes: its directories made (the kernel user's), the
    file itself never a symlink out."""
    target = confine(workdir, name)
    if target == Path(os.path.realpath(workdir)) or target.is_dir():
        raise OutsideWorkdir(f"{name!r} names a directory")
    missing = []
    parent = target.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        directory.mkdir()
        _owned(directory, uid, gid)
    confine(workdir, str(target.parent))  # still inside after creating
    return target


async def save_uploads(reader: MultipartReader, workdir: Path, limit: int, uid: int | None,
                       gid: int | None) -> list[str]:
    """Each part with a filename, written as it arrives; over ``limit`` bytes in all: TooLarge."""
    total, saved = 0, []
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or not part.filename:
            continue
        # aiohttp clients (the 19.09 client's too) percent-encode the name: data%2Fx.csv
        name = unquote(part.filename)
        target = _target(workdir, name, uid, gid)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as out:
            while chunk := await part.read_chunk(1 << 16):
                total += len(chunk)
                if total > limit:
                    out.close()
                    target.unlink(missing_ok=True)
                    raise TooLarge(f"uploads are limited to {limit} bytes")
                out.write(chunk)
        _owned(target, uid, gid)
        saved.append(name)
    return saved


def archive(workdir: Path, name: str) -> IO[bytes]:
    """A tar archive of one file or directory (named as asked, relative), in a temporary file."""
    path = confine(workdir, name)
    if not path.exists():
        raise FileNotFoundError(f"no {name!r}")
    root = Path(os.path.realpath(workdir))
    spool = tempfile.TemporaryFile()
    with tarfile.open(fileobj=spool, mode="w") as tar:
        tar.add(path, arcname=str(path.relative_to(root)) if path != root else ".",
                filter=lambda info: None if info.issym() or info.islnk() else info)  # no links out
    spool.seek(0)
    return spool
