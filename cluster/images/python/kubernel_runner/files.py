"""The file calls: list, upload (multipart, streamed to disk), download (tar archives).

Every path is confined (``paths.confine``) and reached by ``paths.walk``; symlinks met
inside a listed or downloaded directory are listed as what they are but never followed.
"""

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

from .paths import RACE_ERRNOS, OutsideWorkdir, confine, opened_root, parts_inside, walk

FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC


class TooLarge(Exception):
    pass


def entry(name: str, info: os.stat_result) -> dict[str, Any]:
    """One listed file as 19.09 described it (pure)."""
    return {
        "filename": name,
        "size": info.st_size,
        "mode": stat.filemode(info.st_mode),
        "ctime": info.st_ctime,
        "mtime": info.st_mtime,
        "atime": info.st_atime,
    }


def listing(workdir: Path, name: str) -> dict[str, Any]:
    """19.09's answer: ``files`` (the entries as a JSON string), ``errors``, ``abspath``."""
    directory = confine(workdir, name)
    with opened_root(workdir) as root:
        fd = walk(root, parts_inside(workdir, directory))
        try:
            entries = []
            with os.scandir(fd) as scan:
                for item in scan:
                    try:
                        entries.append(entry(item.name, item.stat(follow_symlinks=False)))
                    except FileNotFoundError:
                        continue  # gone meanwhile
        finally:
            os.close(fd)
    entries.sort(key=lambda e: e["filename"])
    return {"files": json.dumps(entries), "errors": "", "abspath": str(directory)}


def upload_name(filename: str) -> str:
    """A part's filename as the client meant it: aiohttp clients (19.09's too) percent-encode it."""
    return unquote(filename)


async def save_uploads(
    reader: MultipartReader, workdir: Path, limit: int, owner: tuple[int, int] | None
) -> list[str]:
    """Each part with a filename written as it arrives (its directories made); more than
    ``limit`` bytes in all: TooLarge (the partial file removed)."""
    total, saved = 0, []
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or not part.filename:
            continue
        name = upload_name(part.filename)
        parts = parts_inside(workdir, confine(workdir, name))
        if not parts:
            raise OutsideWorkdir(f"{name!r} names the working directory itself")
        with opened_root(workdir) as root:
            directory = walk(root, parts[:-1], create=True, owner=owner)
        try:
            try:
                fd = os.open(
                    parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | FILE_FLAGS, 0o644, dir_fd=directory
                )
            except OSError as exc:
                if exc.errno in RACE_ERRNOS:
                    raise OutsideWorkdir(f"{name!r} is a directory or a link") from None
                raise
            with os.fdopen(fd, "wb") as out:
                if owner is not None:
                    os.fchown(out.fileno(), *owner)
                while chunk := await part.read_chunk(1 << 16):
                    total += len(chunk)
                    if total > limit:
                        out.close()
                        os.unlink(parts[-1], dir_fd=directory)
                        raise TooLarge(f"uploads are limited to {limit} bytes per request")
                    out.write(chunk)
        finally:
            os.close(directory)
        saved.append(name)
    return saved


def _tarinfo(arcname: str, info: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    member = tarfile.TarInfo(arcname)
    member.type, member.mode, member.mtime = kind, stat.S_IMODE(info.st_mode), int(info.st_mtime)
    member.uid, member.gid = info.st_uid, info.st_gid
    member.size = info.st_size if kind == tarfile.REGTYPE else 0
    return member


def _add(tar: tarfile.TarFile, dir_fd: int, name: str, arcname: str) -> None:
    """A regular file, or a directory and what is in it; anything else (links) left out."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISREG(info.st_mode):
            fd = os.open(name, os.O_RDONLY | FILE_FLAGS, dir_fd=dir_fd)
            with os.fdopen(fd, "rb") as source:
                info = os.fstat(fd)
                if stat.S_ISREG(info.st_mode):
                    tar.addfile(_tarinfo(arcname, info, tarfile.REGTYPE), source)
        elif stat.S_ISDIR(info.st_mode):
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | FILE_FLAGS, dir_fd=dir_fd)
            try:
                tar.addfile(_tarinfo(arcname, os.fstat(fd), tarfile.DIRTYPE))
                for child in sorted(os.listdir(fd)):
                    _add(tar, fd, child, f"{arcname}/{child}")
            finally:
                os.close(fd)
    except OSError as exc:
        if exc.errno in RACE_ERRNOS or isinstance(exc, FileNotFoundError):
            return  # swapped for a link, or gone, meanwhile: left out
        raise


def archive(workdir: Path, name: str) -> IO[bytes]:
    """A tar archive of one file or directory, in a temporary file. As Docker's archive
    call (19.09's agent used it) does, its one top entry is the path's last component."""
    path = confine(workdir, name)
    parts = parts_inside(workdir, path)
    if not path.exists():
        raise FileNotFoundError(f"there is no {name!r}")
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - returned open, the caller streams and closes it
    with (
        opened_root(workdir) as root,
        tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        if parts:
            parent = walk(root, parts[:-1])
            try:
                _add(tar, parent, parts[-1], parts[-1])
            finally:
                os.close(parent)
        else:
            _add(tar, root, ".", path.name or "work")
    spool.seek(0)
    return spool
