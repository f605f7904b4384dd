"""Virtual folders: PersistentVolumeClaims with owners, and mount requests (pure).

A claim in the sessions' namespace is a folder a session may mount when its
labels say whose it is (Backend.AI's user, group and domain folders):

- ``kubernel.io/access-key: <key>``: the keypair's own folder;
- ``kubernel.io/group: <group>`` (and ``kubernel.io/domain``, default ``default``):
  the folder of a group, for the sessions that run for that group;
- only ``kubernel.io/domain: <domain>``: every session of that domain.

``kubernel.io/access: ro`` makes it read-only for them (default ``rw``). A claim
with none of these labels is nobody's folder: no session mounts it. Labels,
rather than a resource of our own: the platform team already manages claims,
``kubectl label pvc`` is the whole grant, and the API server indexes labels.

A mount request is ``name``, ``name:path``, ``name:ro``/``name:rw`` or
``name:path:ro``/``name:path:rw``; the path stays inside the working directory.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Literal

from . import resource as r
from .model import MOUNT_NAME_PATTERN
from .runner import WORKDIR as HOME

_CLAIM_NAME = re.compile(MOUNT_NAME_PATTERN)

LABEL_FOLDER_ACCESS = f"{r.GROUP}/access"  # ro | rw
MODES = ("ro", "rw")
Access = Literal["ro", "rw"]


class BadMount(ValueError):
    """A mount request that is not well-formed (the message says why)."""


@dataclass(frozen=True)
class MountRequest:
    name: str
    path: str | None = None  # relative to HOME; None: HOME/<name>
    mode: Access | None = None  # None: the folder's own access


def parse_mount(text: str) -> MountRequest:
    """``name[:path][:ro|:rw]``, the path normalised and confined to the working directory."""
    name, _, rest = text.partition(":")
    mode: Access | None = None
    path = rest or None
    if rest in MODES:
        mode, path = rest, None  # type: ignore[assignment]
    elif rest.rpartition(":")[2] in MODES and ":" in rest:
        path, _, last = rest.rpartition(":")
        mode = last  # type: ignore[assignment]
    if not _CLAIM_NAME.match(name) or len(name) > 253:
        raise BadMount(f"{name!r} is not a folder name (a PersistentVolumeClaim name)")
    return MountRequest(name=name, path=confined(path) if path is not None else None, mode=mode)


def confined(path: str) -> str:
    """A mount path inside the working directory, relative to it. Raises BadMount."""
    if "\x00" in path or ":" in path:
        raise BadMount(f"mount path {path!r} has a character a path cannot have here")
    full = posixpath.normpath(path if path.startswith("/") else posixpath.join(HOME, path))
    if not full.startswith(HOME + "/"):
        raise BadMount(f"mount path {path!r} is outside the working directory {HOME}")
    return posixpath.relpath(full, HOME)


def access_of(labels: dict[str, str] | None, *, access_key: str, domain: str, group: str) -> Access | None:
    """What a session of (``access_key``, ``domain``, ``group``) may do with a claim
    labelled ``labels``: ``rw``, ``ro``, or None (not its folder, or no claim)."""
    if labels is None:
        return None
    owner_key = labels.get(r.LABEL_ACCESS_KEY)
    owner_group = labels.get(r.LABEL_GROUP)
    owner_domain = labels.get(r.LABEL_DOMAIN)
    # Exact matches only: a key, group or domain a label cannot spell owns no folder.
    if owner_key is not None:
        mine = owner_key == access_key and owner_domain in (None, domain)
    elif owner_group is not None:
        mine = owner_group == group and (owner_domain or "default") == domain
    elif owner_domain is not None:
        mine = owner_domain == domain
    else:
        mine = False  # nobody's folder
    if not mine:
        return None
    return "ro" if labels.get(LABEL_FOLDER_ACCESS, "rw") == "ro" else "rw"


def read_only(requested: Access | None, granted: Access) -> bool | None:
    """The mount's read-only flag, or None if the request asks more than the grant."""
    if requested == "rw" and granted == "ro":
        return None
    return requested == "ro" or granted == "ro"
