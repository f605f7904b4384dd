"""The real node's images, built without a Docker engine or an outside registry.

- ``pause``: the sandbox image, one static Go binary (``cluster/images/pause``).
- ``python``: a Python 3 kernel on a Debian base made from Debian's packages
  (debootstrap), with the files of ``cluster/images/python``.

Both are assembled with umoci into one OCI layout in the cache, rebuilt only when
their inputs change (a digest of everything that goes in), and pushed with skopeo
to the test bed's registry on loopback, from where the kubelet really pulls them.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .settings import REPO_ROOT

IMAGES_SOURCE = REPO_ROOT / "cluster" / "images"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
KERNEL_UID = 1000
"""The ``work`` user kernels run as; a later Pod securityContext names the same UID."""


@dataclass(frozen=True)
class ImageSpec:
    name: str
    """The repository under ``kubernel/`` in the registry."""
    tag: str
    packages: tuple[str, ...]
    """Debian packages of a debootstrap base; empty: an image of the Go binary alone."""
    entrypoint: tuple[str, ...]
    env: tuple[str, ...] = ()
    workdir: str = "/"
    user: str = ""

    @property
    def source(self) -> Path:
        return IMAGES_SOURCE / self.name

    @property
    def reference(self) -> str:
        return f"kubernel/{self.name}:{self.tag}"


PAUSE = ImageSpec("pause", "3.10", packages=(), entrypoint=("/pause",), user="65535:65535")
PYTHON = ImageSpec(
    "python", "3.11", packages=("python3", "procps"),
    entrypoint=("python3", "/opt/kubernel/kernel.py"),
    env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
         "PYTHONUNBUFFERED=1", "HOME=/home/work"),
    workdir="/home/work",
)
IMAGES = (PAUSE, PYTHON)


# -- pure ----------------------------------------------------------------------------
def inputs_digest(spec: ImageSpec, files: dict[str, bytes], builder: bytes) -> str:
    """Everything that decides an image's content: its spec, its files, the builder."""
    h = hashlib.sha256()
    h.update(repr((spec, DEBIAN_SUITE, KERNEL_UID)).encode())
    for path in sorted(files):
        h.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    h.update(hashlib.sha256(builder).digest())
    return h.hexdigest()[:16]


def config_arguments(spec: ImageSpec) -> list[str]:
    """``umoci config`` arguments: entrypoint, environment, working directory, user."""
    args = ["--clear=config.entrypoint", "--clear=config.cmd", "--clear=config.env"]
    args += [f"--config.entrypoint={part}" for part in spec.entrypoint]
    args += [f"--config.env={item}" for item in spec.env]
    args += [f"--config.workingdir={spec.workdir}", f"--config.user={spec.user}",
             f"--config.label=org.opencontainers.image.title=kubernel/{spec.name}",
             "--config.label=org.opencontainers.image.source=https://github.com/kubernel/kubernel"]
    return args


def layout_tag(spec: ImageSpec) -> str:
    return f"{spec.name}-{spec.tag}"


# -- I/O -----------------------------------------------------------------------------
Say = Callable[[str], None]


def _files(spec: ImageSpec) -> dict[str, bytes]:
    return {str(p.relative_to(spec.source)): p.read_bytes()
            for p in sorted(spec.source.rglob("*")) if p.is_file()}


def digest_of(spec: ImageSpec) -> str:
    return inputs_digest(spec, _files(spec), Path(__file__).read_bytes())


def _run(*argv: str | Path, cwd: Path | None = None) -> None:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv[:3]))} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def _pause_rootfs(spec: ImageSpec, rootfs: Path) -> None:
    rootfs.mkdir(parents=True)
    _run("go", "build", "-trimpath", "-ldflags=-s -w", "-o", rootfs / "pause", ".", cwd=spec.source)


def _debian_rootfs(spec: ImageSpec, rootfs: Path) -> None:
    """debootstrap (minbase + the packages), the kernel user, the image's files, no caches."""
    _run("debootstrap", "--variant=minbase", f"--include={','.join(spec.packages)}", DEBIAN_SUITE, rootfs,
         DEBIAN_MIRROR)
    _run("chroot", rootfs, "useradd", "--uid", str(KERNEL_UID), "--user-group", "--create-home",
         "--home-dir", "/home/work", "--shell", "/bin/bash", "work")
    target = rootfs / "opt" / "kubernel"
    target.mkdir(parents=True)
    for path, content in _files(spec).items():
        (target / path).write_bytes(content)
    for junk in ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info",
                 "var/log", "debootstrap"):
        shutil.rmtree(rootfs / junk, ignore_errors=True)
        (rootfs / junk).mkdir(parents=True, exist_ok=True)


def _build(spec: ImageSpec, layout: Path, work: Path, say: Say) -> None:
    rootfs = work / f"rootfs-{spec.name}"
    shutil.rmtree(rootfs, ignore_errors=True)
    if spec.packages:
        say(f"[images] {spec.reference}: debootstrap {DEBIAN_SUITE} minbase + {', '.join(spec.packages)} "
            "(a few minutes, once)")
        _debian_rootfs(spec, rootfs)
    else:
        say(f"[images] {spec.reference}: go build")
        _pause_rootfs(spec, rootfs)
    say(f"[images] {spec.reference}: assembling the OCI image (umoci)")
    if not (layout / "index.json").exists():
        _run("umoci", "init", "--layout", layout)
    image = f"{layout}:{layout_tag(spec)}"
    _run("umoci", "new", "--image", image)
    _run("umoci", "insert", "--image", image, rootfs, "/")
    _run("umoci", "config", "--image", image, *config_arguments(spec))
    _run("umoci", "gc", "--layout", layout)
    shutil.rmtree(rootfs, ignore_errors=True)


def ensure_built(cache_dir: Path, say: Say) -> Path:
    """The OCI layout holding every image, each rebuilt only if its inputs changed."""
    root = cache_dir / "images"
    layout = root / "oci"
    root.mkdir(parents=True, exist_ok=True)
    for spec in IMAGES:
        stamp = root / f"{spec.name}.inputs"
        digest = digest_of(spec)
        if stamp.exists() and stamp.read_text() == digest and (layout / "index.json").exists():
            continue
        started = time.monotonic()
        _build(spec, layout, root, say)
        stamp.write_text(digest)
        say(f"[images] {spec.reference} built in {time.monotonic() - started:.0f}s")
    return layout


def push(layout: Path, registry: str, say: Say) -> dict[str, str]:
    """Copy every image into the registry (plain HTTP); unchanged blobs are not sent again."""
    pushed = {}
    for spec in IMAGES:
        ref = f"{registry}/{spec.reference}"
        digest_file = layout.parent / f"{spec.name}.manifest-digest"
        _run("skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"--digestfile={digest_file}",
             f"oci:{layout}:{layout_tag(spec)}", f"docker://{ref}")
        pushed[ref] = digest_file.read_text().strip()
    say(f"[images] pushed {', '.join(spec.reference for spec in IMAGES)} to {registry}")
    return pushed


def retag(registry: str, source: str, target: str) -> None:
    """Copy ``source`` to ``target`` inside the registry (a tag no node has pulled yet)."""
    _run("skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
         f"docker://{registry}/{source}", f"docker://{registry}/{target}")
