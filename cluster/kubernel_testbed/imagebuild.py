"""The real node's images, built without a Docker engine or an outside registry.

- ``kubernel/pause:3.10``: the sandbox image, one static Go binary (``cluster/images/pause``).
- ``kubernel/python:3.11``: a Python 3 kernel on a Debian base made from Debian's
  packages (``debootstrap --variant=minbase bookworm`` + python3, procps), with the
  files of ``cluster/images/python`` under ``/opt/kubernel`` (the code runner,
  ``kubernel_runner``, its entrypoint) and the runner's pinned wheels under
  ``/opt/kubernel/lib``.

Both live in one OCI layout in the cache (``<cache>/images/oci``, tags ``pause-3.10``
and ``python-3.11``), assembled with umoci (gzip layers, OCI image-spec). An image is
rebuilt only when the digest of its inputs (its definition, its files, this builder,
the Go toolchain) changes; the debootstrap rootfs is cached on its own, keyed by
suite, variant and package list, so a change of an image's configuration or files
does not download Debian again. ``push`` copies them with skopeo to the test bed's
registry on loopback, from where the kubelet really pulls them.

    python -m kubernel_testbed.imagebuild build | push HOST:PORT | retag HOST:PORT SRC DST
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .polling import run_logged
from .settings import REPO_ROOT, TestbedSettings

IMAGES_SOURCE = REPO_ROOT / "cluster" / "images"
APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
FALLBACK_MIRROR = "http://deb.debian.org/debian"
PROJECT_SOURCE = "https://github.com/kubernel/kubernel"

KERNEL_USER = "work"
KERNEL_UID = 1000
"""UID and GID of ``work``, the user kernels run as (the Pod's securityContext names it)."""
KERNEL_HOME = "/home/work"

SLIM_PATHS = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/man",
    "usr/share/info",
    "usr/share/lintian",
    "var/log",
    "dev",
)
"""Directories of a Debian rootfs emptied before packing: caches, manuals, logs, and
the device nodes debootstrap made (the container runtime mounts its own /dev)."""

Say = Callable[[str], None]


@dataclass(frozen=True)
class DebianBase:
    """A rootfs made by debootstrap from Debian's packages."""

    suite: str
    packages: tuple[str, ...]
    """Installed on top of the variant (``--include``)."""
    variant: str = "minbase"


@dataclass(frozen=True)
class ImageSpec:
    """One image: where its content comes from and its OCI configuration."""

    name: str
    """The repository under ``kubernel/`` in the registry, and the folder under cluster/images."""
    tag: str
    base: DebianBase | None = None
    """None: the image holds only what this spec puts in (no distribution)."""
    go_binary: str = ""
    """Path in the image of the static binary built from the Go module in the folder."""
    go_package: str = "."
    """The main package ``go build`` builds in that module: ``.``, or one of a module it requires."""
    go_ldflags: tuple[str, ...] = ()
    """Linker flags after ``-s -w`` (e.g. ``-X`` of a version variable)."""
    files_dir: str = ""
    """Directory in the image that receives the folder's files as they are."""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    workdir: str = ""
    user: str = ""
    """Empty: not set, the Pod's securityContext decides."""
    python_requirements: str = ""
    """A pinned requirements file of the folder: its wheels go to ``<files_dir>/lib`` (pip --target)."""
    check: tuple[str, ...] = ()
    """A command run in the finished rootfs (chroot, the image's environment); the build fails if it does."""

    @property
    def reference(self) -> str:
        return f"kubernel/{self.name}:{self.tag}"


RUNNER_PATHS = ("/opt/kubernel", "/opt/kubernel/lib")
RUNNER_BOOTSTRAP = (
    f"import sys; sys.path[:0] = {list(RUNNER_PATHS)!r}; "
    "import runpy; runpy.run_module('kubernel_runner', run_name='__main__', alter_sys=True)"
)
"""The runner starts isolated (-I: no PYTHON* variable, no working directory or script
directory on its path, no user site): a session's environ (PYTHONPATH) or a module planted
in its home or a folder cannot shadow a module of the runner's, which holds its token. Its
own paths are set here instead; the interpreter it starts for the user's code has PYTHONPATH."""

PAUSE = ImageSpec("pause", "3.10", go_binary="/pause", entrypoint=("/pause",), user="65535:65535")
PYTHON = ImageSpec(
    "python",
    "3.11",
    base=DebianBase("bookworm", ("python3", "procps")),  # procps: `kubectl exec ... ps`
    files_dir="/opt/kubernel",
    python_requirements="requirements.txt",  # the code runner's: aiohttp, jupyter_client, ipykernel
    cmd=("/usr/bin/python3", "-I", "-c", RUNNER_BOOTSTRAP),  # Cmd, not Entrypoint: a Pod's args replace it
    check=("/usr/bin/python3", "-I", "-c", RUNNER_BOOTSTRAP, "--check"),  # imports, finds ipykernel's spec
    # HOME too: pip --user and IPython write there even for a UID /etc/passwd lacks (runc: HOME=/).
    env=(
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG=C.UTF-8",
        "PYTHONUNBUFFERED=1",
        f"HOME={KERNEL_HOME}",
        "PYTHONPATH=" + ":".join(RUNNER_PATHS),
    ),
    workdir=KERNEL_HOME,
)
IMAGES = (PAUSE, PYTHON)

TRAEFIK_VERSION = "3.6.12"
"""The Traefik release the ingress controller image builds (cluster/images/traefik/go.mod requires it)."""
_TRAEFIK_VERSION_VAR = "github.com/traefik/traefik/v3/pkg/version"
TRAEFIK = ImageSpec(
    "traefik",
    TRAEFIK_VERSION,
    go_binary="/traefik",
    go_package="github.com/traefik/traefik/v3/cmd/traefik",
    # BuildDate: the release's date, not the build's, so the binary stays reproducible.
    go_ldflags=(
        f"-X {_TRAEFIK_VERSION_VAR}.Version={TRAEFIK_VERSION}",
        f"-X {_TRAEFIK_VERSION_VAR}.BuildDate=2026-03-26T09:54:04Z",
    ),
    entrypoint=("/traefik",),
    user="65532:65532",
)
ON_DEMAND = (TRAEFIK,)
"""Images built only when something asks for them (``ensure_built(..., specs=...)``), never
at ``make cluster``: Traefik's compile takes minutes and only ``make deploy`` needs it."""


# -- pure ----------------------------------------------------------------------------
def source_dir(spec: ImageSpec) -> Path:
    return IMAGES_SOURCE / spec.name


def layout_tag(spec: ImageSpec) -> str:
    """The image's tag inside the OCI layout (a ref name holds no second colon)."""
    return f"{spec.name}-{spec.tag}"


def read_inputs(directory: Path) -> dict[str, bytes]:
    """The files of an image's folder by relative path (Python's caches left out)."""
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def _hash_part(h: hashlib._Hash, label: str, data: bytes) -> None:
    # Length-prefixed, so no two different input sets can hash the same byte stream.
    h.update(f"{label}\0{len(data)}\0".encode() + data)


def inputs_digest(spec: ImageSpec, files: Mapping[str, bytes], builder: bytes, toolchain: str = "") -> str:
    """Everything that decides an image's content: its definition (suite, packages,
    configuration), its folder's files, the builder's code and the Go toolchain."""
    h = hashlib.sha256()
    _hash_part(h, "spec", json.dumps(dataclasses.asdict(spec), sort_keys=True).encode())
    _hash_part(h, "user", f"{KERNEL_USER}:{KERNEL_UID}:{KERNEL_HOME}".encode())
    for path in sorted(files):
        _hash_part(h, f"file:{path}", files[path])
    _hash_part(h, "builder", builder)
    _hash_part(h, "toolchain", toolchain.encode())
    return h.hexdigest()[:16]


def base_digest(base: DebianBase) -> str:
    """What the cached debootstrap rootfs depends on (not the mirror: same packages)."""
    return hashlib.sha256(json.dumps(dataclasses.asdict(base), sort_keys=True).encode()).hexdigest()[:16]


def mirror_from_sources(text: str, suite: str) -> str | None:
    """The first http(s) URI of a deb822 ``.sources`` stanza that serves ``suite``."""
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, list[str]] = {}
        for line in stanza.splitlines():
            if line.strip() and not line.startswith(("#", " ", "\t")):
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.split()
        if fields.get("enabled", ["yes"])[0].lower() == "no" or "deb" not in fields.get("types", []):
            continue
        if suite in fields.get("suites", []):
            for uri in fields.get("uris", []):
                if uri.startswith(("http://", "https://")):
                    return uri.rstrip("/")
    return None


def debootstrap_argv(base: DebianBase, target: Path, mirror: str) -> list[str]:
    argv = ["debootstrap", f"--variant={base.variant}"]
    if base.packages:
        argv.append(f"--include={','.join(base.packages)}")
    return [*argv, base.suite, str(target), mirror]


def oci_config(spec: ImageSpec) -> dict[str, Any]:
    """The ``config`` object of the image's OCI configuration, as umoci writes it
    (empty fields left out)."""
    labels = {
        "org.opencontainers.image.title": f"kubernel/{spec.name}",
        "org.opencontainers.image.version": spec.tag,
        "org.opencontainers.image.source": PROJECT_SOURCE,
    }
    config: dict[str, object] = {
        "User": spec.user,
        "Env": list(spec.env),
        "Entrypoint": list(spec.entrypoint),
        "Cmd": list(spec.cmd),
        "WorkingDir": spec.workdir,
        "Labels": labels,
    }
    return {key: value for key, value in config.items() if value}


def umoci_config_args(spec: ImageSpec) -> list[str]:
    """``umoci config`` options that give a new image ``oci_config(spec)``."""
    config = oci_config(spec)
    args = [f"--config.entrypoint={part}" for part in config.get("Entrypoint", [])]
    args += [f"--config.cmd={part}" for part in config.get("Cmd", [])]
    args += [f"--config.env={item}" for item in config.get("Env", [])]
    args += [f"--config.label={key}={value}" for key, value in config["Labels"].items()]
    if "WorkingDir" in config:
        args.append(f"--config.workingdir={config['WorkingDir']}")
    if "User" in config:
        args.append(f"--config.user={config['User']}")
    return args


def history_entry(spec: ImageSpec) -> str:
    """The layer's ``created_by``: how its content was made."""
    parts = []
    if spec.base:
        parts.append(
            " ".join(debootstrap_argv(spec.base, Path("/"), "<mirror>")[:-2])
            + f"; useradd --uid {KERNEL_UID} {KERNEL_USER}"
        )
    if spec.go_binary:
        parts.append(
            f"(cd cluster/images/{spec.name}; CGO_ENABLED=0 "
            f"{' '.join(go_build_argv(spec, Path(spec.go_binary)))})"
        )
    if spec.files_dir:
        parts.append(f"cp cluster/images/{spec.name}/* {spec.files_dir}/")
    return "; ".join(parts)


def manifest_digests(index: Mapping[str, Any]) -> dict[str, str]:
    """Tag -> manifest digest of an OCI layout's ``index.json``."""
    return {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index.get("manifests", [])
        if "org.opencontainers.image.ref.name" in m.get("annotations", {})
    }


def mounts_below(mountinfo: str, root: Path) -> list[str]:
    """Mount points inside ``root`` from /proc/self/mountinfo, deepest first."""
    inside = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            if Path(point).is_relative_to(root) and Path(point) != root:
                inside.append(point)
    return sorted(inside, key=lambda p: p.count("/"), reverse=True)


def registry_reference(registry: str, spec: ImageSpec) -> str:
    return f"{registry}/{spec.reference}"


def format_duration(seconds: float) -> str:
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s" if seconds >= 60 else f"{seconds:.1f}s"


# -- I/O -----------------------------------------------------------------------------
def _run(*argv: str | Path, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(map(str, argv[:4]))} ...` failed ({done.returncode}):\n"
            f"{(done.stderr or done.stdout)[-3000:]}"
        )
    return done.stdout


def _go() -> str:
    found = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if found is None:
        raise RuntimeError("the pause image needs Go (`go` on PATH or /usr/local/go/bin/go)")
    return found


def _go_env() -> dict[str, str]:
    # Static (no cgo), and no inherited GOFLAGS (-mod=vendor would fail: no vendor/).
    return {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "", "GOOS": "linux"}


def _toolchain(spec: ImageSpec) -> str:
    """The Go version that builds the binary: a new compiler makes a new binary."""
    if not spec.go_binary:
        return ""
    return _run(_go(), "env", "GOVERSION", cwd=source_dir(spec), env=_go_env()).strip()


def current_digest(spec: ImageSpec) -> str:
    return inputs_digest(spec, read_inputs(source_dir(spec)), Path(__file__).read_bytes(), _toolchain(spec))


def debian_mirror(suite: str) -> str:
    """This machine's Debian mirror (it may be the only one reachable), else Debian's."""
    try:
        return mirror_from_sources(APT_SOURCES.read_text(), suite) or FALLBACK_MIRROR
    except OSError:
        return FALLBACK_MIRROR


def _remove_tree(path: Path) -> None:
    """Delete a rootfs, first unmounting what a failed debootstrap left mounted in it
    (/proc; in some containers a bind of the host's /dev), never crossing into a mount."""
    if not path.exists() and not path.is_symlink():
        return
    with open("/proc/self/mountinfo") as mountinfo:
        for point in mounts_below(mountinfo.read(), path.resolve()):
            subprocess.run(["umount", "--lazy", point], capture_output=True)
    _run("rm", "-rf", "--one-file-system", path)


@contextmanager
def _locked(root: Path, exclusive: bool) -> Iterator[None]:
    """Serialize builders (two test runs) and keep a push from reading a layout mid-build."""
    with open(root / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield


def base_dir_name(base: DebianBase) -> str:
    return f"{base.suite}-{base.variant}-{base_digest(base)}"


def _debian_rootfs(base: DebianBase, cache: Path, step: str, say: Say) -> Path:
    """The debootstrap rootfs of ``base``, made once and kept while an image uses it."""
    rootfs = cache / base_dir_name(base)
    what = f"debootstrap {base.suite} ({base.variant} + {', '.join(base.packages)})"
    if rootfs.is_dir():
        say(f"[images] {what}: {step} cached")
        return rootfs
    mirror = debian_mirror(base.suite)
    say(f"[images] {what} from {mirror}: {step} (a few minutes, once)")
    partial = rootfs.with_name(rootfs.name + ".partial")
    _remove_tree(partial)  # debootstrap refuses a target left by an interrupted run
    started = time.monotonic()
    _run(*debootstrap_argv(base, partial, mirror))
    # The downloaded .debs are installed and useless; the cache need not keep them.
    for deb in (partial / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    partial.rename(rootfs)
    # The rootfs just made is kept even if no spec here names it (serviceimage's own base).
    in_use = {rootfs.name} | {base_dir_name(spec.base) for spec in IMAGES if spec.base}
    for stale in cache.iterdir():
        if stale.name not in in_use:  # a changed package list's old rootfs
            _remove_tree(stale)
    say(f"[images] debootstrap done in {format_duration(time.monotonic() - started)}")
    return rootfs


def _add_kernel_user(rootfs: Path) -> None:
    """``work`` (UID = GID = 1000), its home owned by it and open to read (0755): the
    image's WORKDIR must be enterable whatever UID a Pod picks."""
    _run("chroot", rootfs, "groupadd", "--gid", str(KERNEL_UID), KERNEL_USER)
    _run(
        "chroot",
        rootfs,
        "useradd",
        "--uid",
        str(KERNEL_UID),
        "--gid",
        str(KERNEL_UID),
        "--create-home",
        "--home-dir",
        KERNEL_HOME,
        "--shell",
        "/bin/bash",
        KERNEL_USER,
    )
    (rootfs / KERNEL_HOME.lstrip("/")).chmod(0o755)


def _delete(path: Path) -> None:
    """A file, a symlink (never followed: it points into the host) or a directory tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _slim(rootfs: Path) -> None:
    """Drop what a kernel never reads; keep the copyright files and locale.alias."""
    for relative in SLIM_PATHS:
        for entry in (rootfs / relative).glob("*"):
            if relative == "var/log" and entry.is_dir():  # keep the directories packages expect
                for log in entry.rglob("*"):
                    if log.is_file():
                        log.unlink()
            else:
                _delete(entry)
    for doc in (rootfs / "usr/share/doc").glob("*/*"):
        if doc.name != "copyright":
            _delete(doc)
    for locale in (rootfs / "usr/share/locale").glob("*"):
        if locale.name != "locale.alias":
            _delete(locale)
    for leftover in (
        "var/cache/debconf/config.dat-old",
        "var/cache/debconf/templates.dat-old",
        "var/lib/dpkg/status-old",
        "var/lib/dpkg/diversions-old",
    ):
        (rootfs / leftover).unlink(missing_ok=True)
    # The host's name and resolver were copied in; the runtime mounts the Pod's own.
    for host_file in ("etc/hostname", "etc/resolv.conf"):
        (rootfs / host_file).unlink(missing_ok=True)
        (rootfs / host_file).write_text("")


def _install_files(spec: ImageSpec, rootfs: Path) -> None:
    target = rootfs / spec.files_dir.lstrip("/")
    for relative, content in read_inputs(source_dir(spec)).items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        path.write_bytes(content)
        path.chmod(0o644)


def pip_target_argv(python: str, requirements: Path, target: Path) -> list[str]:
    """Wheels of a pinned requirements file into ``target``, for the image's Python 3.11
    (the platform is this machine's: the image's Debian, glibc and architecture), with
    their bytecode: the kernel user cannot write it there, and compiling IPython at
    every start took seconds of a small kernel's CPU."""
    return [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--target",
        str(target),
        "-r",
        str(requirements),
    ]


def _install_wheels(spec: ImageSpec, rootfs: Path) -> None:
    target = rootfs / spec.files_dir.lstrip("/") / "lib"
    _run(*pip_target_argv(sys.executable, source_dir(spec) / spec.python_requirements, target))


def go_build_argv(spec: ImageSpec, out: Path, go: str = "go") -> list[str]:
    """``go build`` of the spec's package, run in its folder (the module whose go.mod
    pins it). -buildvcs=false: the binary must not depend on the repository's git state."""
    ldflags = " ".join(("-s", "-w", *spec.go_ldflags))
    # -v: each package's name as it is compiled, which the progress lines show.
    return [
        go,
        "build",
        "-v",
        "-trimpath",
        "-buildvcs=false",
        f"-ldflags={ldflags}",
        "-o",
        str(out),
        spec.go_package,
    ]


def _build_go_binary(spec: ImageSpec, rootfs: Path, cache: Path, say: Say) -> None:
    out = rootfs / spec.go_binary.lstrip("/")
    out.parent.mkdir(parents=True, exist_ok=True)
    run_logged(
        go_build_argv(spec, out, _go()),
        cache / "logs" / f"go-build-{spec.name}.log",
        f"go build {spec.go_package}",
        say,
        cwd=source_dir(spec),
        env=_go_env(),
    )
    out.chmod(0o755)


def _fill_rootfs(spec: ImageSpec, rootfs: Path, cache: Path, steps: Iterator[str], say: Say) -> None:
    if spec.base:
        base = _debian_rootfs(spec.base, cache / "debootstrap", next(steps), say)
        say(
            f"[images] {spec.reference}: the {KERNEL_USER} user, {spec.files_dir}, no caches or docs: "
            f"{next(steps)}"
        )
        _run("cp", "-a", "--reflink=auto", base, rootfs)
        _add_kernel_user(rootfs)
        _slim(rootfs)
    else:
        rootfs.mkdir(mode=0o755)
    if spec.go_binary:
        say(f"[images] {spec.reference}: go build {spec.go_binary} (static): {next(steps)}")
        _build_go_binary(spec, rootfs, cache, say)
    if spec.files_dir:
        _install_files(spec, rootfs)
    if spec.python_requirements:
        say(
            f"[images] {spec.reference}: pip install {spec.python_requirements} into {spec.files_dir}/lib: "
            f"{next(steps)}"
        )
        _install_wheels(spec, rootfs)
    if spec.check:
        _run("chroot", rootfs, "/usr/bin/env", "-i", *spec.env, *spec.check)


def _build(spec: ImageSpec, layout: Path, cache: Path, say: Say) -> None:
    """Rootfs -> one gzip layer (umoci unpack/repack) -> configuration, under a
    temporary tag that replaces the real one only when complete."""
    if os.geteuid() != 0:
        raise RuntimeError("building the images needs root (debootstrap, chroot, the files' owners)")
    count = (
        2 + (2 if spec.base else 0) + (1 if spec.go_binary else 0) + (1 if spec.python_requirements else 0)
    )
    steps = iter(f"{n}/{count}" for n in range(1, count + 1))
    building = f"{layout}:{layout_tag(spec)}.building"
    work = cache / "work"  # one build at a time: ensure_built holds the lock
    _remove_tree(work)
    work.mkdir(parents=True)
    try:
        _run("umoci", "new", "--image", building)
        # An unpacked empty image is a bundle whose rootfs we replace with ours; repack
        # then writes that whole rootfs as the image's one layer.
        _run("umoci", "unpack", "--image", building, work / "bundle")
        rootfs = work / "bundle" / "rootfs"
        rootfs.rmdir()
        _fill_rootfs(spec, rootfs, cache, steps, say)
        say(f"[images] {spec.reference}: packing the layer (umoci repack, gzip): {next(steps)}")
        _run(
            "umoci",
            "repack",
            "--image",
            building,
            f"--history.created_by={history_entry(spec)}",
            work / "bundle",
        )
        say(f"[images] {spec.reference}: configuration, tag {layout_tag(spec)}: {next(steps)}")
        _run(
            "umoci",
            "config",
            "--image",
            building,
            f"--tag={layout_tag(spec)}",
            "--history.created_by=umoci config",
            *umoci_config_args(spec),
        )
    finally:
        _remove_tree(work)
        if layout_tag(spec) + ".building" in manifest_digests(
            json.loads((layout / "index.json").read_text())
        ):
            _run("umoci", "rm", "--image", building)


def _open_layout(layout: Path) -> dict[str, str]:
    """Tag -> manifest digest of the layout, created (or recreated if broken) first."""
    try:
        return manifest_digests(json.loads((layout / "index.json").read_text()))
    except (OSError, ValueError):
        _remove_tree(layout)
        _run("umoci", "init", "--layout", layout)
        return {}


def ensure_built(cache_dir: Path, say: Say, specs: tuple[ImageSpec, ...] = IMAGES) -> Path:
    """The OCI layout (``<cache>/images/oci``) holding ``specs`` by ``layout_tag`` (the
    others it holds stay as they are), each rebuilt only when its inputs digest differs
    from the one stored beside it."""
    root = cache_dir / "images"
    layout = root / "oci"
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root, exclusive=True):
        present = _open_layout(layout)
        built = False
        for spec in specs:
            stamp = root / f"{spec.name}.inputs"
            digest = current_digest(spec)
            if layout_tag(spec) in present and stamp.exists() and stamp.read_text().strip() == digest:
                say(f"[images] {spec.reference}: cached (inputs {digest})")
                continue
            started = time.monotonic()
            _build(spec, layout, root, say)
            stamp.write_text(digest + "\n")
            built = True
            say(f"[images] {spec.reference}: built in {format_duration(time.monotonic() - started)}")
        if built:
            _run("umoci", "gc", "--layout", layout)  # the replaced images' blobs
    return layout


def _registry_digest(registry: str, spec: ImageSpec) -> str | None:
    """The manifest digest the registry serves for the image's tag, if any."""
    request = urllib.request.Request(
        f"http://{registry}/v2/kubernel/{spec.name}/manifests/{spec.tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.headers.get("Docker-Content-Digest")
    except (urllib.error.URLError, OSError):  # not there (404), or no answer: skopeo will say
        return None


def push(layout: Path, registry: str, say: Say, specs: tuple[ImageSpec, ...] = IMAGES) -> dict[str, str]:
    """Copy ``specs`` (by default every image but the on-demand ones) to
    ``<registry>/kubernel/<name>:<tag>`` (plain HTTP); an image the registry already
    holds under the same digest is not copied again. Returns reference -> manifest digest."""
    pushed = {}
    with _locked(layout.parent, exclusive=False):
        digests = manifest_digests(json.loads((layout / "index.json").read_text()))
        for spec in specs:
            reference = registry_reference(registry, spec)
            digest = digests[layout_tag(spec)]
            if _registry_digest(registry, spec) != digest:
                # --preserve-digests: the registry's digest is the layout's, which is
                # what makes the check above work next time.
                _run(
                    "skopeo",
                    "copy",
                    "--quiet",
                    "--preserve-digests",
                    "--dest-tls-verify=false",
                    f"oci:{layout}:{layout_tag(spec)}",
                    f"docker://{reference}",
                )
                say(f"[images] pushed {reference} ({digest[:19]})")
            pushed[reference] = digest
    return pushed


def retag(registry: str, source: str, target: str) -> None:
    """Copy ``source`` to ``target`` inside the registry, both ``kubernel/<name>:<tag>``
    (tests use it for a tag no node has pulled yet)."""
    _run(
        "skopeo",
        "copy",
        "--quiet",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{registry}/{source}",
        f"docker://{registry}/{target}",
    )


def _say(message: str) -> None:
    print(f"[imagebuild {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """``build`` (prints the layout), ``push HOST:PORT``, ``retag HOST:PORT SRC DST``."""
    parser = argparse.ArgumentParser(
        prog="python -m kubernel_testbed.imagebuild",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build what changed; print the OCI layout")
    push_parser = sub.add_parser("push", help="build what changed, push every image")
    push_parser.add_argument("registry", help="HOST:PORT of a plain-HTTP registry")
    retag_parser = sub.add_parser("retag", help="copy an image to a new tag inside the registry")
    retag_parser.add_argument("registry")
    retag_parser.add_argument("source", help="e.g. kubernel/python:3.11")
    retag_parser.add_argument("target", help="e.g. kubernel/python:fresh")
    args = parser.parse_args(argv)

    if args.command == "retag":
        retag(args.registry, args.source, args.target)
        return 0
    layout = ensure_built(TestbedSettings.from_env().cache_dir, _say)
    if args.command == "push":
        for reference, digest in push(layout, args.registry, _say).items():
            print(f"{reference}@{digest}")
    else:
        print(layout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
